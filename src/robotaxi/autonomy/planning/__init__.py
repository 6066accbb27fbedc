"""Planning: route, behaviour and motion planning."""
