"""Reference cycles freed only by the cyclic garbage collector.

Each request builds a tree of ``Node`` objects (a root and 200 children) with
parent<->child back-references, a cycle per child, and drops it. Reference
counting alone never frees them; the interpreter's automatic gc (left
enabled, never called by hand) does. Live ``Node`` counts therefore jump
around with gc timing (a few hundred to a few thousand, gen-2 garbage included)
but do not trend.

LEAKS: no. Garbage cycles are reclaimed by the automatic collector.

EXPECT: none
"""

from __future__ import annotations

import os
import time

RUN_SECONDS = float(os.environ.get("SCENARIO_SECONDS", "20"))
# Sleeping between requests keeps the program well under half a core.
PACE_SECONDS = 0.002
# Big enough trees matter: the part-built tree alive at each gen-1 collection is
# promoted to gen 2, and gen 2 is only collected once such promotions reach a
# quarter of all long-lived objects. With ~20 children that takes 20-50 s, so
# cycle garbage would rise for the whole run; with 200 it is ~1 s, and the live
# Node count stays in a band of a few thousand (measured on 3.10-3.13).
CHILDREN_PER_REQUEST = 200


class Node:
    """A tree node that knows its parent (the back-reference makes the cycle)."""

    def __init__(self, name: str, parent: Node | None = None) -> None:
        self.name = name
        self.parent = parent
        self.children: list[Node] = []
        if parent is not None:
            parent.children.append(self)


def build_tree(request_id: int) -> Node:
    root = Node(f"request-{request_id}")
    for i in range(CHILDREN_PER_REQUEST):
        Node(f"child-{i}", root)
    return root


def handle_request(request_id: int) -> int:
    root = build_tree(request_id)
    return sum(len(child.name) for child in root.children)


def main() -> int:
    deadline = time.monotonic() + RUN_SECONDS
    request_id = 0
    while time.monotonic() < deadline:
        handle_request(request_id)
        request_id += 1
        time.sleep(PACE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
