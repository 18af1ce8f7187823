"""The objective string grammar shared by the CLI and the API.

    expr   := term (('+' | '-') term)*
    term   := factor (('*' | '/') factor)*
    factor := '-' factor | NUMBER | unit | '(' expr ')'
    unit   := LAYER                       whole layer, DeepDream        inception4c
            | LAYER ':' UNITS             channel(s), mean over space   inception4c:97, inception4c:0-63
            | LAYER ':' UNITS '@' X ',' Y neuron at a position          inception4c:97@7,7
            | LAYER ':' UNITS '@centre'   neuron at the centre
            | 'logit' ':' CLASSES     class logit(s)                    logit:281, logit:tabby, logit:'tiger cat'
    UNITS  := SPAN (',' SPAN)*            (no spaces: 0-63, 2,14,20-23; in the order written)
    CLASSES := (SPAN | CLASS) (',' (SPAN | CLASS))*                    logit:tabby,285,'tiger cat'
    SPAN   := INT | INT '-' INT

A LAYER is a dotted module name; its parts may start with a digit, as in a bare nn.Sequential (`0.2:3`). Such a
name followed by ':' is a layer; without ':' it reads as a number, so the whole-layer form needs a letter in it.

A LAYER may contain '-' written without spaces (`blocks.conv-b:3`, a ModuleDict key); with spaces around it, '-'
subtracts (`a:1 - b:2`). So `a-b:2` is the layer 'a-b', unless the model's layer names are known (`layers` of
`parse_objective`, which `render` passes): then the longest of `a`, `a-b` that names a layer is taken, and what
follows it subtracts (`conv2-1` is conv2 minus 1 on a model with a layer conv2 and none called conv2-1). Where '-'
follows a unit or a range (`conv2:3-conv1:2`) or a number (`2-conv2:3`), it subtracts, as before.

>>> parse_objective("inception4c:97 - 0.5*inception4d:12").name
'inception4c:97 - 0.5*inception4d:12'
"""
from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from dreamlab.errors import DreamlabError, ObjectiveSyntaxError, unknown
from dreamlab.optvis import objectives as o
from dreamlab.optvis.capture import OUTPUT
from dreamlab.optvis.units import unit_range

_FORMS = ("layer, layer:97, layer:0-63, layer:2,14,20-23, layer:97@x,y, logit:281, logit:name, and + - * / with "
          "numbers")
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<layer>[A-Za-z_0-9][A-Za-z_0-9.]*(?=\s*:))   # before a ':' even '0.2' is a layer name, not a number
  | (?P<dashed>\d[\d.]*\.(?![eE][-+]?\d)[A-Za-z_][A-Za-z_0-9.]*(?=(?:-[A-Za-z_0-9][A-Za-z_0-9.]*)+\s*:))
                                                  # '0.conv' of '0.conv-b:3' is a name, not the number '0.'
  | (?P<number>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)
  | (?P<name>[A-Za-z_0-9][A-Za-z_0-9.]*)
  | (?P<quoted>'[^']*'|"[^"]*")
  | (?P<op>[-+*/():@,])
""", re.VERBOSE)


class _ObjectiveParser:
    """A recursive-descent parser of one objective string (the grammar above) into an Objective."""

    def __init__(self, text: str, categories: Sequence[str] | None, layers: Collection[str] | None = None):
        if not isinstance(text, str):
            already = "; an Objective needs no parsing: pass it as it is" if isinstance(text, o.Objective) else ""
            raise DreamlabError(f"an objective string is needed, such as 'inception4c:97' or 'logit:3'; got "
                                f"{type(text).__name__}{already}")
        self.text = text
        self.categories = categories
        self.layers = None if layers is None else {*layers, OUTPUT}  # the model's layer names, when known
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, position)
        self.after_class = -1  # the token index after the last class name read (logit:tabby)
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                self.fail(pos, f"unexpected character {text[pos]!r}{_quote_hint(text, pos)}")
            if m.lastgroup != "space":
                kind = "name" if m.lastgroup in ("layer", "dashed") else m.lastgroup
                self.tokens.append((kind, m.group(), pos))
            pos = m.end()
        self.tokens.append(("end", "", len(text)))
        self.i = 0

    def fail(self, pos: int, what: str) -> None:
        marked = f"{self.text[:pos]}>>{self.text[pos:]}"
        raise ObjectiveSyntaxError(f"bad objective {self.text!r}: {what} at position {pos + 1} ({marked}); "
                                   f"valid forms: {_FORMS}")

    @property
    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, value: str, what: str) -> None:
        kind, val, pos = self.take()
        if val != value:
            self.fail(pos, f"expected {what}, found {val or 'the end'!r}")

    def parse(self) -> o.Objective:
        if self.peek[0] == "end":
            self.fail(0, "empty objective")
        try:
            result = self.expr()
        except RecursionError:  # parentheses or signs nested hundreds deep: each level is a call of the parser
            shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
            raise ObjectiveSyntaxError(f"objective {shown!r} nests parentheses or signs too deeply for the "
                                       f"parser; write it with fewer levels (a sum needs none: a:1 + a:2 + ...)"
                                       ) from None
        kind, val, pos = self.peek
        if kind != "end":
            hint = " (a unit list is written without spaces: 2,14)" if val == "," else ""
            if val == "," and self.tokens[self.i - 1][1] in ("centre", "center"):  # conv2:1@centre,3
                hint = " (@centre is a whole position: write @centre alone, or @x,y for another one)"
            if self.i == self.after_class and kind == "name":  # logit:tabby cat
                name = self.tokens[self.i - 1][1]
                hint = (f" (a class name with spaces is written with '_' for them or in quotes: logit:{name}_{val} "
                        f"or logit:'{name} {val}')")
            self.fail(pos, f"unexpected {val!r}{hint}")
        if not isinstance(result, o.Objective):
            number = self.text.strip()  # `--target 4`: a class index without its layer
            hint = f" (class {number} is logit:{number})" if number.isdigit() else ""
            if self.layers is not None and number in self.layers:  # a bare nn.Sequential's child: see LAYER above
                hint = (f" (a layer named {number} reads as a number without ':': its channels are {number}:0-N; "
                        f"from Python, dreamlab.objectives.deepdream({number!r}) is the whole layer)")
            self.fail(0, f"an objective needs at least one layer or logit, not just numbers{hint}")
        return result

    def expr(self) -> o.Objective | float:
        left = self.term()
        while self.peek[1] in ("+", "-"):
            _, op, pos = self.take()
            right = self.term()
            left = self.finite(left + right if op == "+" else left - right, pos)
        return left

    def term(self) -> o.Objective | float:
        left = self.factor()
        while self.peek[1] in ("*", "/"):
            op = self.take()[1]
            pos = self.peek[2]
            right = self.factor()
            if op == "/" and not isinstance(right, o.Objective) and right == 0:
                self.fail(pos, "division by zero")
            left = self.finite(left * right if op == "*" else left / right, pos)
        return left

    def finite(self, value: o.Objective | float, pos: int, written: str = "") -> o.Objective | float:
        """`value`, refused at `pos` when it is a number the scores cannot hold (1e400, or 1e300*1e300)."""
        if not isinstance(value, o.Objective) and o.constant_error(value):
            what = f"number {written}" if written else "this arithmetic of numbers gives a number that"
            self.fail(pos, f"{what} is too large: objective numbers are float32, at most ±{o.MAX_CONSTANT:.3g}")
        return value

    def factor(self) -> o.Objective | float:
        kind, val, pos = self.peek
        if val == "-":
            self.take()
            return -self.factor()
        if val == "(":
            self.take()
            inner = self.expr()
            self.expect(")", "')'")
            return inner
        if kind == "number" or (kind == "name" and val.isdigit() and self.tokens[self.i + 1][1] not in (":", "@")):
            self.take()
            return self.finite(float(val), pos, val)
        if kind == "name":
            return self.unit()
        self.fail(pos, f"expected a layer, a number or '(', found {val or 'the end'!r}")
        raise AssertionError  # fail() always raises

    def integer(self, what: str) -> tuple[int, int]:
        kind, val, pos = self.take()
        if kind != "name" or not val.isdigit():
            self.fail(pos, f"expected {what}, found {val or 'the end'!r}")
        return int(val), pos

    def units(self) -> list[int]:
        """UNITS: spans joined by commas written without spaces (2,14,20-23), in the order written."""
        found = self.span()
        while self.joins(","):
            self.take()
            pos = self.peek[2]
            for unit in self.span():
                if unit in found:
                    self.fail(pos, f"unit {unit} is listed twice; for several images of one unit use "
                                   f"--diversity N (diversity=N; with --diversity-weight 0 they differ by their "
                                   f"start only)")
                found.append(unit)
        return found

    def joins(self, value: str) -> bool:
        """The next token is `value` glued between the previous token and a number (0-63, 2,14: no spaces)."""
        return self.peek[1] == value and self.glued(self.i - 1, self.i) and self.tokens[self.i + 1][1].isdigit() \
            and self.glued(self.i, self.i + 1)

    def span(self) -> list[int]:
        first, _ = self.integer("a channel number")
        # '-' glued to both numbers is a range (0-63); with spaces around it, it is a subtraction
        if self.joins("-"):
            self.take()
            last, last_pos = self.integer("the end of the range")
            try:
                return unit_range(first, last)
            except DreamlabError as exc:  # backwards, or too long to render
                self.fail(last_pos, str(exc))
        return [first]

    def layer_name(self) -> str:
        """A LAYER: a name, with the names that '-' glues to it without spaces (blocks.conv-b). With the model's
        layer names known, the longest glued name that is one of them (what follows it then subtracts)."""
        names = [self.take()[1]]
        ends = [self.i]  # token index after each candidate
        while self.peek[1] == "-" and self.glued(self.i - 1, self.i) and self.tokens[self.i + 1][0] == "name" \
                and self.glued(self.i, self.i + 1):
            self.i += 2
            names.append(f"{names[-1]}-{self.tokens[self.i - 1][1]}")
            ends.append(self.i)
        known = [k for k, name in enumerate(names) if self.layers is not None and name in self.layers]
        pick = known[-1] if known else len(names) - 1
        self.i = ends[pick]
        return names[pick]

    def glued(self, left: int, right: int) -> bool:
        """Token `right` starts where token `left` ends (no space between them)."""
        _, value, pos = self.tokens[left]
        return self.tokens[right][2] == pos + len(value)

    def unit(self) -> o.Objective:
        layer = self.layer_name()
        if self.peek[1] != ":":
            if layer == "logit":
                self.fail(self.peek[2], "expected ':' and a class after 'logit' (logit:281)")
            return o.deepdream(layer)
        self.take()
        if layer == "logit":
            return self.logit()
        units = self.units()
        if self.peek[1] != "@":
            return o.channel(layer, units)
        self.take()
        if self.peek[1] in ("centre", "center"):
            self.take()
            return o.neuron(layer, units)
        x, _ = self.integer("an x position (layer:97@7,7)")
        self.expect(",", "',' between the x and y positions")
        y, _ = self.integer("a y position")
        return o.neuron(layer, units, x, y)

    def logit(self) -> o.Objective:
        """The classes after 'logit:': indices, ranges and class names joined by commas without spaces
        (logit:281, logit:tabby, logit:tabby,285,'tiger cat')."""
        found: list[int] = []
        while True:
            kind, val, pos = self.peek
            if kind == "name" and val[0].isdigit():
                items = self.span()
            elif kind in ("name", "quoted"):
                items = [self.class_name()]
            else:
                self.fail(pos, f"expected a class index or name after 'logit:', found {val or 'the end'!r}")
            for item in items:
                if item in found and self.categories is not ANY_CLASS_NAME:  # names all read 0 there
                    written = "" if val[0].isdigit() else f" ({val})"
                    self.fail(pos, f"class {item}{written} is listed twice; for several images of one class use "
                                   f"--diversity N (diversity=N)")
                found.append(item)
            if not self.joins_class():
                return o.logit(found)
            self.take()

    def joins_class(self) -> bool:
        """The next token is a ',' glued between the previous token and a class index or name."""
        return self.peek[1] == "," and self.glued(self.i - 1, self.i) and \
            self.tokens[self.i + 1][0] in ("name", "quoted") and self.glued(self.i, self.i + 1)

    def class_name(self) -> int:
        kind, val, pos = self.take()
        self.after_class = self.i
        name = val[1:-1] if kind == "quoted" else val.replace("_", " ")
        # a name written with '_' for its spaces, or a class name that has '_' in it
        return self._class_index(name, pos, also=val if kind == "name" and val != name else None)

    def _class_index(self, name: str, pos: int, also: str | None = None) -> int:
        """The index of class `name` (or of `also`, the name as written, when `name` names none): the class of
        exactly that name, else the one whose name differs only in case; refused when two classes share it
        (ImageNet's 'Cardigan', a dog, and 'cardigan', a sweater, differ only in case)."""
        if self.categories is ANY_CLASS_NAME:  # checking the syntax before the model (and its classes) loads
            return 0
        if not self.categories:
            self.fail(pos, f"class name {name!r} given but this model has no class names; use an index (logit:3), "
                           f"or list them in its recipe (categories = [...])")
        categories = [str(c) for c in self.categories]
        for wanted in (name, also) if also is not None else (name,):
            found = [i for i, c in enumerate(categories) if c == wanted] \
                or [i for i, c in enumerate(categories) if c.lower() == wanted.lower()]
            if len(found) == 1:
                return found[0]
            if found:
                listed = ", ".join(f"logit:{i} ({categories[i]!r})" for i in found)
                exact = "" if len({categories[i] for i in found}) == 1 else ", or the name in its exact case"
                raise DreamlabError(f"class name {wanted!r} names {len(found)} classes: {listed}; give the index"
                                    f"{exact}")
        raise unknown("class", name, categories, hint="give a class index (logit:281) or a listed name")


def _quote_hint(text: str, pos: int) -> str:
    """For a quote inside a class name (logit:potter's wheel): how to write it; else ''."""
    if text[pos] not in "'\"" or not re.search(r"logit\s*:\s*[A-Za-z_0-9.-]+$", text[:pos]):
        return ""
    whole = re.fullmatch(r"\s*logit\s*:\s*([\w' .-]+?)\s*", text) if text[pos] == "'" else None
    example = f'logit:"{whole[1]}"' if whole else "logit:\"potter's wheel\""
    return f" (a class name with a quote in it goes in the other quotes: {example})"


ANY_CLASS_NAME: Sequence[str] = ("any class name",)  # categories that accept every name: see check_syntax


def check_syntax(text: str) -> None:
    """Refuse an objective string that cannot parse for any model, before a model is loaded (class names are
    checked later, against the model's)."""
    _ObjectiveParser(text, ANY_CLASS_NAME).parse()


def parse_objective(text: str, categories: Sequence[str] | None = None,
                    layers: Collection[str] | None = None) -> o.Objective:
    """Parse an objective string; `categories` (class names) lets `logit:tabby` resolve, and `layers` (the
    model's layer names, `loading.module_names`) decides where a name with '-' ends (see the module's text)."""
    return _ObjectiveParser(text, categories, layers).parse()
