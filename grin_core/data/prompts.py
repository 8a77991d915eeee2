"""The prompt a model line is trained and measured in: every prompt is built by `prompt_ids`.

A line's template travels with its tokenizer (key `grin_prompt_template` of tokenizer_config.json,
so every checkpoint carries it and train, scoring, unlearning, generation, likelihood and probes
cannot disagree): a format string with `{question}` (default `PROMPT_TEMPLATE`, what grin's own
models are trained on), or `chat`: the tokenizer's own chat template, one user turn and the
generation prompt, as a chat model is served. The prompt-format probes pass other templates on purpose.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
CHAT = "chat"
KEY = "grin_prompt_template"


def check_template(template: str, tokenizer: PreTrainedTokenizerBase | None = None) -> str:
    """`template` if usable, else ValueError saying why."""
    if template == CHAT:
        if tokenizer is not None and not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt template 'chat' needs a tokenizer with a chat template; this one has none")
        return template
    if template.count("{question}") != 1:
        raise ValueError("a prompt template must contain {question} exactly once (or be 'chat')")
    try:
        template.format(question="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"prompt template does not format with only {{question}}: {exc}") from None
    return template


def line_template(tokenizer: PreTrainedTokenizerBase) -> str:
    """The template the tokenizer's model line uses (PROMPT_TEMPLATE when none was set)."""
    return tokenizer.init_kwargs.get(KEY) or PROMPT_TEMPLATE


def set_line_template(tokenizer: PreTrainedTokenizerBase, template: str) -> None:
    """Make `template` the line's: saved with the tokenizer from now on."""
    tokenizer.init_kwargs[KEY] = check_template(template, tokenizer)


def format_prompt(question: str, template: str = PROMPT_TEMPLATE) -> str:
    """The prompt text of a format-string template (generation continues after its end)."""
    return template.format(question=question)


def prompt_ids(question: str, tokenizer: PreTrainedTokenizerBase, template: str | None = None) -> list[int]:
    """Token ids of the prompt: BOS + the formatted question, or the chat template's rendering
    (which places its own special tokens). `template` None: the line's."""
    template = template or line_template(tokenizer)
    if template == CHAT:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        return tokenizer.encode(text, add_special_tokens=False)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer.encode(format_prompt(question, template), add_special_tokens=False)
