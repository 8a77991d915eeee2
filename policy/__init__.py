"""The service's pure vocabulary and decisions: the methods a ticket may ask for, one round's setting,
the evaluation gate and the retry ladder.

No I/O, no torch, no prefect: pydantic models and functions of metrics. It sits between grin_core
(whose torch-free configs give a round its defaults) and infra (whose settings and registry hold
gate policies), so every layer above can use one vocabulary.
"""
