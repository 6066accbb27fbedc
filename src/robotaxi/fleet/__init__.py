"""Fleet: demand, dispatch, rebalancing, the trip life cycle, fleet KPIs."""
