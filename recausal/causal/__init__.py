"""Causal discovery from self-attention: pure numpy/scipy/networkx (no torch, no RecBole)."""
