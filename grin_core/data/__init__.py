"""Data: QA records as they arrive (records), TOFU's subsets (tofu), the prompt a line uses (prompts)
and tokenized examples whose loss covers the answer (qa)."""
