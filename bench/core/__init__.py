"""What a method builds on: the method contract and registry (methods.py, multimodal.py), the experiment
schema (config.py, schema.py), the training loop and checkpoints (train.py, schedule.py, gan.py,
monitor.py, visual.py), translation of a folder (translate.py), the registry of released-weights loaders
(released.py) and the two reference methods (reference_methods.py). It imports no method package and no
part of the experiment harness."""
