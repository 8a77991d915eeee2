"""Models and their files: the small Llama the project trains (tiny_llama, tokenizer, train, cache),
checkpoint directories (checkpoint) and a user's causal LM brought in (model_import)."""
