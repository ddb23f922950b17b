"""`python -m planner` is `fleet`."""
from .cli import run

run()
