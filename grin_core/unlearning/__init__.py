"""Unlearning methods and their schedule: the objectives' maths (objectives), GRIN's masked trainer
(unlearn, unlearn_config), GRUN's gated intervention (grun, grun_config, grun_train), the privacy
schedule that steers and stops both (privacy_schedule), resumable progress (resume), the memory a
run keeps (state_bytes) and the methods' names (methods)."""
