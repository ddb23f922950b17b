"""Package data: the shipped scenario cases (`fleet cases` lists them; cases/README.md explains them)."""
