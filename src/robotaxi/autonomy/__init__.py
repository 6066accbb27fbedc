"""One car's brain, pure functions of what its sensors report (DESIGN.md, `autonomy`)."""
