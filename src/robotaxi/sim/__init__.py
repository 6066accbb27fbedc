"""The runner: clock, tick loop, callbacks, history recording."""
