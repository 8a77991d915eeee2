"""TOFU and GRIN metrics as plain functions; each module's docstring says what it measures.

likelihood: answer token log-probs (and Min-K%++ vocabulary statistics) under teacher forcing;
rouge: ROUGE-L recall; truth_ratio: TOFU's reference truth ratio (geometric mean over perturbed
answers) and forget quality; mia: membership-inference scores (loss, zlib, Min-K%, Min-K%++),
their AUC and PrivLeak; keywords: GRIN's keyword accuracy / confidence; utility: model utility.
"""
