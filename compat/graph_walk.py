"""Walking a GraphDef backwards from tensors: what computing them needs (one copy for compat)."""
from typing import Dict, Iterable, Set


def node_name(tensor: str) -> str:
    """`^name`, `name:1` or `name` -> `name`."""
    return tensor.lstrip('^').split(':')[0]


def ancestors(nodes: Dict, tensors: Iterable[str]) -> Set[str]:
    """Names of the nodes (in `nodes`, by name) that computing `tensors` runs, themselves included;
    control inputs count."""
    seen: Set[str] = set()
    stack = [node_name(tensor) for tensor in tensors]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(node_name(i) for i in nodes[name].input)
    return seen
