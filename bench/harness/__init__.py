"""The experiment harness: from an experiment file (experiment_file.py, yaml_files.py) to its runs (plan.py,
reuse.py), each run under its lock (jobs.py, execute.py, locks.py), launched here or on Slurm
(local_workers.py, slurm.py), tabulated (report.py), and watched (status.py, estimate.py); runner.py
strings them together and api.py is the Python entry point (`bench.run`)."""
