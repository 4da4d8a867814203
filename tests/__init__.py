"""slyfs test suite (a package, so that pytest imports it in importlib mode without sys.path edits)."""
