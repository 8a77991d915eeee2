"""How a stage runs: several processes (distributed, stage_job), the shared TrainingArguments
(training_args) and progress steps outside a Trainer loop (steps)."""
