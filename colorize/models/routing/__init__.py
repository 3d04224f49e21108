"""Routing: color profiles, the router training loop, routed training, routed eval and its report."""
