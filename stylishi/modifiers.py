""""Like this, but …": how a short text next to a photo is read.

Words naming a value of the catalog's own metadata ("in blue", "with stripes", "for men", "casual shoes") become a
filter on that value (or, for a column the vector store cannot filter on, a boost); a negation before them ("not
black", "no stripes", "without dots") excludes the value instead. The values come from the catalog (multi-word ones
such as "Navy Blue" or "Polka Dot" included, the longest match winning), with simple plurals and a few common
synonyms that apply only where the catalog has the value they point at. What is left ("with a collar") is the
*rest*: the search embeds it with the text tower and adds it to the picture's vector at `weight`; a negated word
that names no value ("without a hood") is pushed *away* the same way.

`read` returns a `Reading`, a plain record of every decision; messages and status lines are rendered from it.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from .errors import QueryError

# Columns whose values the text may name, in priority order when one phrase names values of several
# ("dress": the article type Dresses before the subcategory Dress).
MODIFIER_COLUMNS = ("article_type", "colour", "pattern", "gender", "subcategory", "usage")
DEFAULT_WEIGHT = 0.3  # how much the rest of the text counts against the picture (0: picture only, 1: text only)
NEGATIONS = {"not", "no", "without", "non", "except", "excluding", "never", "nor"}
# Words that may stand between a negation and what it negates ("not in black", "without any stripes").
LEAD_INS = {"in", "a", "an", "any", "the", "with", "for", "of", "too", "so", "very"}
CONNECTORS = {"or", "and"}  # "not black or white": the negation carries on
# Words that say nothing about the garment; a rest made of these alone is no rest.
FILLER = LEAD_INS | CONNECTORS | {"like", "this", "that", "these", "those", "one", "ones", "but", "same", "similar",
                                  "please", "it", "its", "to", "just", "more", "make", "instead", "rather", "colour",
                                  "color", "version", "i", "want", "looking", "something", "else", "also", "is", "be"}
# Common words → the catalog value (lower case) they mean; used only when the catalog has that value.
SYNONYMS = {"gray": "grey", "stripes": "striped", "stripe": "striped", "stripy": "striped", "stripey": "striped",
            "dots": "polka dot", "dot": "polka dot", "dotted": "polka dot", "spots": "polka dot",
            "spotted": "polka dot", "checks": "checked", "checkered": "checked",
            "chequered": "checked", "plaid": "checked", "tartan": "checked", "plain": "solid",
            "man": "men", "male": "men", "boys": "men", "woman": "women", "female": "women", "ladies": "women",
            "lady": "women", "girls": "women", "pants": "trousers", "tee": "tshirts", "tees": "tshirts",
            "sneakers": "casual shoes", "trainers": "casual shoes", "purse": "handbags", "hat": "caps",
            "hats": "caps"}
MAX_WORDS = 4  # the longest value phrase looked for
NOT_SINGULAR = {"short"}  # "shorts" are a garment, "short" is a length: no singular form for them


@dataclass(frozen=True)
class Term:
    """One value the text named: `words` as typed, the catalog `column` and `value`, and what it does:
    "filter" (only this value), "exclude" (never this value), "boost" / "demote" (this value first / last among
    the nearest items, for a column the store cannot filter on)."""

    words: str
    column: str
    value: str
    effect: str


@dataclass(frozen=True)
class Reading:
    """How a modifier text was read: the named values, the rest (added to the picture at `weight`) and what is
    pushed away. Empty text reads as nothing: a plain picture search."""

    text: str
    terms: tuple[Term, ...] = ()
    rest: str = ""
    away: str = ""
    weight: float = DEFAULT_WEIGHT

    @property
    def empty(self) -> bool:
        return not (self.terms or self.rest or self.away)

    def values(self, effect: str) -> dict[str, list[str]]:
        """{column: [values]} of the terms with this effect, in the order they were named."""
        out: dict[str, list[str]] = {}
        for t in self.terms:
            if t.effect == effect and t.value not in out.setdefault(t.column, []):
                out[t.column].append(t.value)
        return {c: v for c, v in out.items() if v}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "terms": [asdict(t) for t in self.terms]}


def check_weight(weight: Any) -> float:
    """The text weight as a float in [0, 1]; None means DEFAULT_WEIGHT."""
    if weight is None or weight == "":
        return DEFAULT_WEIGHT
    try:
        if isinstance(weight, bool):
            raise ValueError(weight)
        value = float(weight)
    except (TypeError, ValueError):
        raise QueryError(f"text_weight must be a number from 0 (the picture only) to 1 (the words only); default "
                         f"{DEFAULT_WEIGHT}.") from None
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise QueryError(f"text_weight must be from 0 (the picture only) to 1 (the words only); got {value}.")
    return value


@dataclass
class Vocabulary:
    """Every phrase that names a catalog value: normalised phrase → [(column, value)] in column priority."""

    phrases: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, values: Mapping[str, Iterable[str]], columns: Iterable[str] = MODIFIER_COLUMNS) -> "Vocabulary":
        """From a catalog's values per column (e.g. `Catalog.filter_values()` plus its pattern column)."""
        vocab = cls()
        for column in columns:
            for value in values.get(column, ()):
                for key in _forms(_norm(str(value))):
                    entry = vocab.phrases.setdefault(key, [])
                    if (column, value) not in entry:
                        entry.append((column, str(value)))
        for word, target in SYNONYMS.items():  # only where the catalog has what the synonym means
            for key in _forms(target):
                if key in vocab.phrases and word not in vocab.phrases:
                    vocab.phrases[word] = vocab.phrases[key]
        return vocab

    def lookup(self, words: list[str]) -> tuple[str, str] | None:
        found = self.phrases.get(" ".join(words)) or self.phrases.get("".join(words))  # "t shirt" → "tshirt"
        return found[0] if found else None


def read(text: str | None, vocabulary: Vocabulary, *, weight: Any = None, filterable: Iterable[str] = (),
         max_chars: int = 200) -> Reading:
    """Read a modifier text against the catalog's vocabulary. `filterable`: the columns the store can filter on
    (others get boosts). A text over `max_chars` is refused (QueryError)."""
    weight = check_weight(weight)
    text = " ".join(str(text or "").split())
    if len(text) > max_chars:
        raise QueryError(f"The words with the photo are {len(text)} characters long; keep them to at most "
                         f"{max_chars}, e.g. “in blue” or “with stripes, not black”.")
    filterable = set(filterable)
    tokens = re.findall(r"[\w]+(?:['’-][\w]+)*|[,.;:!?]", text.lower())
    terms, rest, away = [], [], []
    negated, i = False, 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ",.;:!?":
            negated, i = False, i + 1
            continue
        match = _match(tokens, i, vocabulary)
        if match:
            n, (column, value) = match
            effect = (("exclude" if negated else "filter") if column in filterable
                      else ("demote" if negated else "boost"))
            terms.append(Term(" ".join(tokens[i:i + n]), column, value, effect))
            _drop_lead_ins(rest)
            i += n
            # a negation carries on over "or"/"and" to the next value ("not black or white"), and no further
            negated = negated and i < len(tokens) and tokens[i] in CONNECTORS
            continue
        if tok in NEGATIONS:
            negated = True
        elif negated and tok in LEAD_INS | CONNECTORS:
            pass
        elif negated:
            away.append(tok)  # a negated word that names no value: pushed away in vector space
            negated = False
        else:
            rest.append(tok)
        i += 1
    _drop_lead_ins(rest)
    rest_text = " ".join(rest) if any(w not in FILLER for w in rest) else ""
    return Reading(text=text, terms=tuple(terms), rest=rest_text, away=" ".join(away), weight=weight)


def _match(tokens: list[str], i: int, vocabulary: Vocabulary) -> tuple[int, tuple[str, str]] | None:
    """The longest value phrase starting at token i: (its length in tokens, (column, value))."""
    for n in range(min(MAX_WORDS, len(tokens) - i), 0, -1):
        words = tokens[i:i + n]
        if any(w in ",.;:!?" for w in words):
            continue
        found = vocabulary.lookup([_norm(w) for w in words])
        if found:
            return n, found
    return None


def _drop_lead_ins(rest: list[str]) -> None:
    """"in blue" → the "in" belongs to the value, not to the rest."""
    while rest and rest[-1] in LEAD_INS:
        rest.pop()


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w ]", "", text.lower().replace("’", "'").replace("'s", "s")).split())


def _forms(key: str) -> set[str]:
    """A value's phrase with its last word singular and plural ("polka dot", "polka dots"; "dresses", "dress")."""
    if not key:
        return set()
    head, _, last = key.rpartition(" ")
    lead = head + " " if head else ""
    forms = {key, key.replace(" ", "")}  # "off-white" is typed as one word
    if last.endswith(("sses", "xes", "ches", "shes")):
        forms.add(lead + last[:-2])
    elif last.endswith("s") and not last.endswith("ss") and len(last) > 3:
        if lead + last[:-1] not in NOT_SINGULAR:
            forms.add(lead + last[:-1])
    else:
        forms.add(lead + last + ("es" if last.endswith(("s", "x", "ch", "sh")) else "s"))
    return forms
