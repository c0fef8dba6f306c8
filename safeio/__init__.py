"""The bottom layer, below the harness (bench) and the scorer (eval): files that survive kills, full disks
and hostile inputs (files.py), image files listed and decoded by their real range (images.py), the
machine and package versions (environment.py), and the commands' exit statuses (exits.py). It imports
nothing of the project."""
