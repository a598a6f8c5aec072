"""The training engine (plain Python, no Django): tiny offline model, TRL config builders,
metrics callback, the GRPO sandbox environment, dataset building and evaluation maths.

``python -m training.engine.run <config.json>`` is the process a training job spawns.
"""
