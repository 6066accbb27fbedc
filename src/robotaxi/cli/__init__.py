"""The `robotaxi` command: builds everything from config and runs it. Only this package exits."""
