"""Edge-mark codes shared by the causal-discovery algorithms and the PAG type.

A graph over ``n`` nodes is an ``int8`` matrix ``marks`` of shape ``(n, n)``:
``marks[i, j]`` is the mark **at node j** on the edge between ``i`` and ``j``.
``marks[i, j] == NONE`` exactly when ``marks[j, i] == NONE`` (no edge). So ``i o-> j`` is
``marks[i, j] == ARROW`` and ``marks[j, i] == CIRCLE``; ``i --> j`` is
``marks[i, j] == ARROW`` and ``marks[j, i] == TAIL``; ``i <-> j`` has ARROW at both ends.
"""

NONE = 0
CIRCLE = 1
ARROW = 2
TAIL = 3

SYMBOL = {CIRCLE: "o", ARROW: ">", TAIL: "-"}
NAME = {CIRCLE: "circle", ARROW: "arrow", TAIL: "tail"}
