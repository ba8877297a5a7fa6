"""YAML specs: yaml.SafeLoader's tree, read with duplicate keys refused, keys and list
items counted, nesting bounded, and where each key is remembered. PyYAML is imported
only when a YAML spec is read.
"""

from __future__ import annotations

import functools
import math
from typing import Dict, List, Optional, Tuple

from .errors import DuplicateDefinition, LimitExceeded, Location, SpecError, SpecSyntaxError
from .spec_file import MAX_DEPTH, MAX_ENTRIES, _BadNumber, _Lines, _short
from .units import MAX_DIGITS


class _YamlProblem(Exception):
    """Raised inside the loader; turned into ``error`` (a SpecError kind, with ``facts``) at ``mark``.
    ``first``: the mark of the first of a duplicate key."""

    def __init__(self, message: str, mark, hint: Optional[str] = None, error: type = SpecError, first=None,
                 **facts) -> None:
        super().__init__(message)
        self.message, self.mark, self.hint = message, mark, hint
        self.error, self.first, self.facts = error, first, facts


@functools.lru_cache(maxsize=1)
def _yaml_loader():
    """yaml.SafeLoader (the same types and tags as yaml.safe_load) that refuses duplicate
    keys, counts keys and list items, bounds nesting, and remembers where each key is."""
    import yaml  # only YAML specs pay for importing it

    class Loader(yaml.SafeLoader):
        def __init__(self, stream) -> None:
            super().__init__(stream)
            self.depth = 0
            self.count = 0
            self.key_marks: Dict[int, Dict[object, object]] = {}
            self.keep: List[dict] = []  # keeps the mapped dicts (and so their ids) alive

        def compose_node(self, parent, index):
            event = self.peek_event()
            if (index is None and parent is not None) or isinstance(index, int):  # a key, or a list item
                self.count += 1
                if self.count > MAX_ENTRIES:
                    raise _YamlProblem(f"more than {MAX_ENTRIES:,} keys and list items, the most a spec may have",
                                       event.start_mark, hint="a spec has a few dozen keys: is this the right file?",
                                       error=LimitExceeded[SpecError], what="entries", limit=MAX_ENTRIES)
            nested = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
            if nested:
                self.depth += 1
                if self.depth > MAX_DEPTH:
                    raise _YamlProblem(f"mappings and lists are nested more than {MAX_DEPTH} levels deep",
                                       event.start_mark, hint="a spec needs two or three levels",
                                       error=LimitExceeded[SpecError], what="nesting", limit=MAX_DEPTH)
            try:
                return super().compose_node(parent, index)
            finally:
                if nested:
                    self.depth -= 1

        def construct_yaml_map(self, node):
            data: dict = {}
            yield data
            own: Dict[object, object] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # keys merged in with << may be overridden, as YAML says
                key = self.construct_object(key_node)
                try:
                    hash(key)
                except TypeError:
                    continue  # construct_mapping says "found unhashable key"
                if key in own:
                    raise _YamlProblem(f"'{_short(key)}' is set twice in one mapping", key_node.start_mark,
                                       hint=f"the first is on line {own[key].line + 1}; each key may appear once",
                                       error=DuplicateDefinition[SpecError], first=own[key], name=str(key))
                own[key] = key_node.start_mark
            data.update(self.construct_mapping(node))
            marks: Dict[object, object] = {}
            for key_node, _ in node.value:  # merged keys first, then the mapping's own
                key = self.construct_object(key_node)
                try:
                    marks[key] = key_node.start_mark
                except TypeError:
                    pass
            self.key_marks[id(data)] = marks
            self.keep.append(data)

        def construct_yaml_int(self, node):
            text = self.construct_scalar(node)
            if len(text) > MAX_DIGITS:
                return _BadNumber(text, f"longer than {MAX_DIGITS} digits")
            return super().construct_yaml_int(node)

        def construct_yaml_float(self, node):
            value = super().construct_yaml_float(node)
            return value if math.isfinite(value) else _BadNumber(self.construct_scalar(node), "not a finite number")

    Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_yaml_map)
    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    Loader.add_constructor("tag:yaml.org,2002:float", Loader.construct_yaml_float)
    return Loader


def _read_yaml(lines: _Lines):
    import yaml

    try:
        loader = _yaml_loader()(lines.text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, found before parsing
        raise SpecSyntaxError(f"YAML syntax: character #x{exc.character:04x} is not allowed in YAML",
                              lines.offset(exc.position), hint="special (control) characters are not allowed",
                              format="yaml") from None
    try:
        tree = loader.get_single_data()
    except _YamlProblem as exc:
        mark, facts = exc.mark, dict(exc.facts)
        if exc.first is not None:
            facts["first"] = lines.at(exc.first.line + 1, exc.first.column + 1)
        raise exc.error(exc.message, lines.at(mark.line + 1, mark.column + 1), hint=exc.hint, **facts) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        loc = lines.at(mark.line + 1, mark.column + 1) if mark else lines.at(1, 1)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecSyntaxError(f"YAML syntax: {problem}", loc, format="yaml") from None
    except RecursionError:  # pragma: no cover - nesting is bounded above
        raise LimitExceeded[SpecError](f"mappings and lists are nested more than {MAX_DEPTH} levels deep",
                                       lines.at(1, 1), what="nesting", limit=MAX_DEPTH) from None
    finally:
        loader.dispose()
    marks = loader.key_marks

    def locate(node: dict, section: Tuple[str, ...], key) -> Location:
        mark = marks.get(id(node), {}).get(key)
        if mark is None:
            return lines.at(1, 1)
        return lines.at(mark.line + 1, mark.column + 1, len(str(key)))

    return ({} if tree is None else tree), locate
