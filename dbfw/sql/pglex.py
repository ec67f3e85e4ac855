"""PostgreSQL's lexer, as the server runs it (src/backend/parser/scan.l), for the parts that decide what
a text means: where strings, quoted identifiers, dollar quotes and comments begin and end, what value
each literal has, and where one statement ends and the next begins.

dbfw classifies with sqlglot's tokens. sqlglot is not PostgreSQL: where the two could read a text
differently (a backslash before a quote while ``standard_conforming_strings`` is off, a nested
comment, a Unicode-escaped identifier), a statement dbfw sees as harmless could be two statements to
the server. :func:`agrees` holds sqlglot's tokens against this lexer's; any difference makes the
statement unknown. This module knows nothing of sqlglot's types beyond the token attributes it reads.

The lexer works on text already decoded from the client encoding. That is exact only for encodings
whose multibyte characters never contain an ASCII byte; the session refuses the others (see
:data:`ASCII_UNSAFE_ENCODINGS`), or reads only pure-ASCII text in them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

# Client encodings in which a multibyte character can end in an ASCII byte such as a backslash or a
# quote (PostgreSQL refuses them as server encodings for this reason). A text in one of them is read
# safely only if it is pure ASCII.
ASCII_UNSAFE_ENCODINGS = frozenset({"SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "GB18030", "UHC", "JOHAB"})
# The server's other names for them (src/common/encnames.c), compared as it compares names: lower case,
# letters and digits only.
_UNSAFE_ALIASES = {"sjis": "SJIS", "shiftjis": "SJIS", "mskanji": "SJIS", "win932": "SJIS", "windows932": "SJIS",
                   "shiftjis2004": "SHIFT_JIS_2004", "big5": "BIG5", "win950": "BIG5", "windows950": "BIG5",
                   "gbk": "GBK", "win936": "GBK", "windows936": "GBK", "cp936": "GBK", "gb18030": "GB18030",
                   "uhc": "UHC", "win949": "UHC", "windows949": "UHC", "johab": "JOHAB"}


def unsafe_encoding(name: str) -> str | None:
    """The ASCII-unsafe encoding ``name`` stands for in PostgreSQL, or None."""
    clean = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())
    return _UNSAFE_ALIASES.get(clean)

# Token kinds. Literal kinds carry their decoded value.
IDENT = "ident"          # unquoted identifier or keyword; value is the ASCII-downcased text
QIDENT = "qident"        # "quoted" or U&"quoted" identifier; value is the exact name
STRING = "string"        # '...', E'...', U&'...', N'...', $tag$...$tag$
BITS = "bits"            # B'...'
HEX = "hex"              # X'...'
NUMBER = "number"
PARAM = "param"          # $1
OP = "op"                # an operator or punctuation, value is its text
SEMICOLON = "semicolon"

LITERAL_KINDS = frozenset({QIDENT, STRING, BITS, HEX})


class LexError(ValueError):
    """The server would refuse this text while lexing it (unterminated string, trailing junk...)."""


class PgToken(NamedTuple):
    kind: str
    start: int   # offset of the first character
    end: int     # offset of the last character (inclusive, as sqlglot's tokens)
    value: str


@dataclass(frozen=True, slots=True)
class Lexed:
    tokens: tuple[PgToken, ...]
    comments: tuple[tuple[int, int], ...]  # (start, end inclusive) of every comment


_IDENT_START = r"A-Za-z_\x80-\U0010ffff"
_IDENT_CONT = r"A-Za-z0-9_$\x80-\U0010ffff"
_DOLQ_CONT = r"A-Za-z0-9_\x80-\U0010ffff"
_OP_CHARS = r"~!@#^&|`?+\-*/%<>="

_MASTER = re.compile(
    r"(?P<ws>[ \t\n\r\f\v]+)"
    r"|(?P<line>--[^\n\r]*)"
    r"|(?P<block>/\*)"
    r"|(?P<estr>[eE]')"
    r"|(?P<bstr>[bB]')"
    r"|(?P<xstr>[xX]')"
    r"|(?P<nstr>[nN]')"
    r"|(?P<ustr>[uU]&')"
    r"|(?P<uident>[uU]&\")"
    r"|(?P<str>')"
    r"|(?P<qident>\")"
    rf"|(?P<dolq>\$(?:[{_IDENT_START}][{_DOLQ_CONT}]*)?\$)"
    r"|(?P<param>\$[0-9]+)"
    rf"|(?P<ident>[{_IDENT_START}][{_IDENT_CONT}]*)"
    r"|(?P<number>(?:[0-9]+(?:\.(?!\.)[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<typecast>::|:=|=>|\.\.)"
    rf"|(?P<op>(?:(?!--|/\*)[{_OP_CHARS}])+)"
    r"|(?P<semi>;)"
    r"|(?P<other>.)",
    re.DOTALL,
)

_STANDARD_BODY = re.compile(r"(?:[^']|'')*+'", re.DOTALL)
_ESCAPE_BODY = re.compile(r"(?:[^\\']|\\.|'')*+'", re.DOTALL)
_QIDENT_BODY = re.compile(r'(?:[^"]|"")*+"', re.DOTALL)
# A string literal goes on after whitespace that holds a newline (scan.l's quotecontinue), in the same
# state: the part after E'...'<newline> reads backslashes as escapes, whatever its own prefix.
_CONTINUE = re.compile(r"(?:[ \t\f]|--[^\n\r]*+)*+[\n\r](?:[ \t\n\r\f\v]++|--[^\n\r]*+[\n\r])*+'")
_JUNK = re.compile(rf"[{_IDENT_START}]")
_UESCAPE = re.compile(r"[ \t\n\r\f\v]*(?:--[^\n\r]*[\n\r][ \t\n\r\f\v]*)*[uU][eE][sS][cC][aA][pP][eE][ \t\n\r\f\v]*"
                      r"'((?:[^']|'')*)'", re.DOTALL)
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_OCTAL = re.compile(r"[0-7]{1,3}")
_HEX1 = re.compile(r"[0-9A-Fa-f]{1,2}")


def downcase(word: str) -> str:
    """PostgreSQL folds unquoted identifiers with ASCII rules only (in multibyte encodings)."""
    return word.translate(_ASCII_LOWER) if not word.islower() else word


def truncate(name: str) -> str:
    """Names longer than NAMEDATALEN - 1 bytes are cut there by the server (on a character boundary)."""
    if len(name) <= 15 or len(name.encode("utf-8", "surrogatepass")) <= _NAME_BYTES:
        return name
    raw = name.encode("utf-8", "surrogatepass")[:_NAME_BYTES]
    return raw.decode("utf-8", "ignore")


_NAME_BYTES = 63
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def lex(text: str, standard_strings: bool = True) -> Lexed:
    """Tokens of ``text`` as PostgreSQL reads it with ``standard_conforming_strings`` = ``standard_strings``.

    Raises :class:`LexError` where the server's lexer raises (the statement would not run at all).
    """
    tokens: list[PgToken] = []
    comments: list[tuple[int, int]] = []
    append = tokens.append
    match = _MASTER.match
    unicode_literals: set[int] = set()
    pos, n = 0, len(text)
    while pos < n:
        m = match(text, pos)
        assert m is not None  # the last alternative matches any character
        kind = m.lastgroup
        end = m.end()
        if kind == "ws":
            pass
        elif kind == "ident":
            word = downcase(m.group())
            if word == "uescape" and tokens and tokens[-1].start in unicode_literals:
                # UESCAPE apart from its literal (a comment between): read by the grammar, not here.
                raise LexError("dbfw reads UESCAPE only right after its Unicode literal")
            append(PgToken(IDENT, pos, end - 1, truncate(word)))
        elif kind == "op" or kind == "typecast":
            append(PgToken(OP, pos, end - 1, m.group()))
        elif kind == "number":
            if end < n and _JUNK.match(text, end):
                raise LexError("trailing junk after numeric literal")
            append(PgToken(NUMBER, pos, end - 1, m.group()))
        elif kind == "semi":
            append(PgToken(SEMICOLON, pos, pos, ";"))
        elif kind == "str" or kind == "nstr" or kind == "estr" or kind == "bstr" or kind == "xstr":
            end = _string(kind, text, pos, end, standard_strings, append)
        elif kind == "ustr":
            if not standard_strings:
                raise LexError("unsafe use of string constant with Unicode escapes")
            unicode_literals.add(pos)
            end = _unicode_string(text, pos, end, append)
        elif kind == "qident" or kind == "uident":
            if kind == "uident":
                unicode_literals.add(pos)
            end = _quoted_identifier(kind, text, pos, end, append)
        elif kind == "dolq":
            end = _dollar_quoted(m.group(), text, pos, end, append)
        elif kind == "param":
            if end < n and _JUNK.match(text, end):
                raise LexError("trailing junk after parameter")
            append(PgToken(PARAM, pos, end - 1, m.group()))
        elif kind == "line" or kind == "block":
            end = _block_comment_end(text, end) if kind == "block" else end
            comments.append((pos, end - 1))
        else:  # other: a character PostgreSQL's grammar rejects; it is a token of its own
            if m.group() == "$":
                raise LexError("syntax error at or near \"$\"")
            append(PgToken(OP, pos, pos, m.group()))
        pos = end
    return Lexed(tuple(tokens), tuple(comments))


def _string(kind: str, text: str, pos: int, end: int, standard_strings: bool,
            append: Callable[[PgToken], None]) -> int:
    """A '...', N'...', E'...', B'...' or X'...' literal starting at ``pos`` (its quote ends at ``end``), with
    each part continuing it on a later line. Returns where it ends."""
    if kind == "bstr" or kind == "xstr":
        body, token_kind = _STANDARD_BODY, BITS if kind == "bstr" else HEX
    else:
        body = _STANDARD_BODY if standard_strings and kind != "estr" else _ESCAPE_BODY
        token_kind = STRING
    first = pos
    while True:
        part = body.match(text, end)
        if part is None:
            raise LexError("unterminated quoted string")
        raw = part.group()[:-1]
        value = _unescape(raw) if body is _ESCAPE_BODY else raw.replace("''", "'")
        append(PgToken(token_kind, first, part.end() - 1, value))
        end = part.end()
        more = _CONTINUE.match(text, end)
        if more is None:
            return end
        first, end = more.end() - 1, more.end()


def _dollar_quoted(tag: str, text: str, pos: int, end: int, append: Callable[[PgToken], None]) -> int:
    close = text.find(tag, end)
    if close < 0:
        raise LexError("unterminated dollar-quoted string")
    append(PgToken(STRING, pos, close + len(tag) - 1, text[end:close]))
    return close + len(tag)


def _unicode_string(text: str, pos: int, end: int, append: Callable[[PgToken], None]) -> int:
    """A U&'...' literal, with its UESCAPE clause if any."""
    body = _STANDARD_BODY.match(text, end)
    if body is None:
        raise LexError("unterminated quoted string")
    end = body.end()
    if _CONTINUE.match(text, end):
        raise LexError("dbfw does not read a Unicode string continued on another line")
    raw = body.group()[:-1].replace("''", "'")
    end, escape = _uescape(text, end)
    append(PgToken(STRING, pos, body.end() - 1, _unicode_unescape(raw, escape)))
    return end


def _quoted_identifier(kind: str, text: str, pos: int, end: int, append: Callable[[PgToken], None]) -> int:
    """A "..." or U&"..." identifier, truncated as the server truncates names."""
    body = _QIDENT_BODY.match(text, end)
    if body is None:
        raise LexError("unterminated quoted identifier")
    end = body.end()
    name = body.group()[:-1].replace('""', '"')
    if not name:
        raise LexError("zero-length delimited identifier")
    close = end
    if kind == "uident":
        end, escape = _uescape(text, end)
        name = _unicode_unescape(name, escape)
    append(PgToken(QIDENT, pos, close - 1, truncate(name)))
    return end


def _unescape(raw: str) -> str:
    """The value of an escape string's body (E'...', or '...' with standard_conforming_strings off)."""
    if "\\" not in raw:
        return raw.replace("''", "'")
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":  # a doubled quote (the body pattern admits no other)
            out.append("'")
            i += 2
            continue
        if c != "\\":
            out.append(c)
            i += 1
            continue
        c = raw[i + 1]
        i += 2
        if c in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[c])
        elif c in "01234567":
            m = _OCTAL.match(raw, i - 1)
            assert m is not None
            out.append(_byte(int(m.group(), 8)))
            i = m.end()
        elif c == "x" and _HEX1.match(raw, i):
            m = _HEX1.match(raw, i)
            assert m is not None
            out.append(_byte(int(m.group(), 16)))
            i = m.end()
        elif c in "uU":
            width = 4 if c == "u" else 8
            digits = raw[i:i + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise LexError("invalid Unicode escape")
            out.append(_codepoint(int(digits, 16)))
            i += width
        else:
            out.append(c)
    value = "".join(out)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        value = _join_surrogates(value)
    return value


def _byte(value: int) -> str:
    """A byte written as an escape: ASCII is exact; a high byte is part of a character in the server's
    encoding that dbfw cannot know, so it stays a marker no other text can produce."""
    if value == 0:
        raise LexError("invalid byte sequence: zero byte in a string")
    return chr(value) if value < 0x80 else f"\ufffd{value:02x}"


def _codepoint(cp: int) -> str:
    if cp == 0 or cp > 0x10FFFF:
        raise LexError("invalid Unicode escape value")
    return chr(cp)


def _join_surrogates(value: str) -> str:
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError as e:
        raise LexError("invalid Unicode surrogate pair") from e


def _uescape(text: str, end: int) -> tuple[int, str]:
    """A UESCAPE clause after U&'...' or U&"...": where it ends and the escape character."""
    m = _UESCAPE.match(text, end)
    if m is None:
        return end, "\\"
    escape = m.group(1).replace("''", "'")
    if len(escape) != 1 or escape in "0123456789abcdefABCDEF+'\" \t\n\r\f":
        raise LexError("invalid Unicode escape character")
    return m.end(), escape


def _unicode_unescape(raw: str, escape: str) -> str:
    if escape not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != escape:
            out.append(c)
            i += 1
            continue
        if raw[i + 1:i + 2] == escape:
            out.append(escape)
            i += 2
        elif raw[i + 1:i + 2] == "+":
            digits = raw[i + 2:i + 8]
            if len(digits) != 6 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise LexError("invalid Unicode escape")
            out.append(_codepoint(int(digits, 16)))
            i += 8
        else:
            digits = raw[i + 1:i + 5]
            if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise LexError("invalid Unicode escape")
            out.append(_codepoint(int(digits, 16)))
            i += 5
    value = "".join(out)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        value = _join_surrogates(value)
    return value


def _block_comment_end(text: str, pos: int) -> int:
    """Where a block comment whose ``/*`` ends at ``pos`` ends. PostgreSQL nests them."""
    depth = 1
    while True:
        opening = text.find("/*", pos)
        closing = text.find("*/", pos)
        if closing < 0:
            raise LexError("unterminated /* comment")
        if 0 <= opening < closing:
            depth += 1
            pos = opening + 2
        else:
            depth -= 1
            pos = closing + 2
            if depth == 0:
                return pos


def statement_count(lexed: Lexed) -> int:
    """How many statements the server runs: the non-empty runs between semicolons."""
    count, empty = 0, True
    for tok in lexed.tokens:
        if tok.kind == SEMICOLON:
            if not empty:
                count += 1
            empty = True
        else:
            empty = False
    return count + (0 if empty else 1)


# --- agreement with another tokenizer -------------------------------------------------------------------


def disagreement(lexed: Lexed, tokens: Any, literal_types: Any, semicolon_type: Any,
                 parameter_types: Any = frozenset()) -> str | None:
    """Why ``tokens`` (sqlglot's, for the same text) read the text differently from PostgreSQL, or None.

    They agree when every literal token of theirs is exactly one of the server's literals with the same
    value, none of their other tokens reaches into a literal or comment, every character the server reads
    as code is inside one of their tokens, and their semicolons are the server's. Linear in the tokens.
    """
    literals: dict[int, PgToken] = {}
    opaque: list[tuple[int, int]] = list(lexed.comments)
    for tok in lexed.tokens:
        if tok.kind in LITERAL_KINDS:
            literals[tok.start] = tok
            opaque.append((tok.start, tok.end))
    opaque.sort()
    semicolons = {t.start for t in lexed.tokens if t.kind == SEMICOLON}
    parameters = {t.start for t in lexed.tokens if t.kind == PARAM}
    theirs: list[tuple[int, int]] = []
    k, n_opaque = 0, len(opaque)
    for tok in tokens:
        start, end = tok.start, tok.end
        theirs.append((start, end))
        if tok.token_type in literal_types:
            mine = literals.get(start)
            if mine is None or mine.end != end:
                return "a string or quoted name ends elsewhere for the server"
            if mine.value != tok.text:
                return "the server reads a string or quoted name with another value"
            continue
        if tok.token_type in parameter_types and start not in parameters:
            return "the server does not read this as a parameter"
        if tok.token_type == semicolon_type:
            if start not in semicolons:
                return "a statement ends elsewhere for the server"
            semicolons.discard(start)
        while k < n_opaque and opaque[k][1] < start:
            k += 1
        if k < n_opaque and opaque[k][0] <= end:
            return "the server reads part of this text as a string or comment"
    if semicolons:
        return "the server ends a statement where dbfw does not"
    return _uncovered(lexed, theirs)


def _uncovered(lexed: Lexed, theirs: list[tuple[int, int]]) -> str | None:
    """Whether every character of the server's code tokens is inside one of sqlglot's tokens (``theirs``)."""
    theirs.sort()
    j, n_theirs = 0, len(theirs)
    reach = -1  # the furthest offset covered by their tokens seen so far
    for tok in lexed.tokens:
        if tok.kind in LITERAL_KINDS:
            continue
        while j < n_theirs and theirs[j][0] <= tok.start:
            reach = max(reach, theirs[j][1])
            j += 1
        if reach < tok.end:
            # Their tokens may start inside ours (one operator of ours, two of theirs): cover it piecewise.
            covered = reach
            while covered < tok.end and j < n_theirs and theirs[j][0] <= covered + 1:
                covered = max(covered, theirs[j][1])
                reach = max(reach, theirs[j][1])
                j += 1
            if covered < tok.end:
                return "the server reads code where dbfw sees none"
    return None


_PREFIXES = {"national": "nN", "escape": "eE", "bits": "bB", "hex": "xX"}
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BLANK_WITH_NEWLINE = re.compile(r"(?:[ \t\f]|--[^\n\r]*+)*+[\n\r](?:[ \t\n\r\f\v]++|--[^\n\r]*+[\n\r])*+")


def literal_disagreement(text: str, tokens: Any, kinds: dict[Any, str], standard_strings: bool) -> str | None:
    """For a text whose skeleton (everything but its literals) is one :func:`disagreement` already found
    in agreement: whether the server reads each of these literals as one literal of the same extent and
    value. Then it reads the whole text as the agreed one, literal for literal. ``kinds`` maps the
    tokenizer's literal types to "string", "escape", "bits", "hex", "dollar", "unicode", "ident" or
    "number"."""
    escape_state = False  # the state a continued string part inherits
    prev_end = -2
    for tok in tokens:
        kind = kinds.get(tok.token_type)
        if kind is None:
            continue
        raw = text[tok.start:tok.end + 1]
        continued = prev_end >= 0 and kind == "string" and _BLANK_WITH_NEWLINE.fullmatch(text, prev_end + 1,
                                                                                          tok.start) is not None
        prev_end = -2
        if kind == "number":
            if _NUMBER.fullmatch(raw) is None:
                return "a number the server reads otherwise"
            continue
        if kind == "ident":
            if len(raw) < 2 or raw[0] != '"' or _QIDENT_BODY.fullmatch(raw, 1) is None \
                    or raw[1:-1].replace('""', '"') != tok.text or truncate(tok.text) != tok.text:
                return "a quoted name the server reads otherwise"
            continue
        if kind == "dollar":
            close = raw.find("$", 1)
            tag = raw[:close + 1]
            body = raw[len(tag):len(raw) - len(tag)]
            if close < 0 or len(raw) < 2 * len(tag) or not raw.endswith(tag) or tag in body or body != tok.text:
                return "a dollar-quoted string the server reads otherwise"
            continue
        if kind == "string":
            escaped = escape_state if continued else not standard_strings
            opening = 1
        elif kind == "national":
            escaped, opening = not standard_strings, 2
        elif kind == "escape":
            escaped, opening = True, 2
        elif kind in ("bits", "hex"):
            escaped, opening = False, 2
        else:  # Unicode strings are read by the full lexer only
            return "a Unicode string dbfw reads only on first sight"
        if raw[opening - 1:opening] != "'" or (opening == 2 and raw[0] not in _PREFIXES[kind]):
            return "a string the server reads otherwise"
        body = (_ESCAPE_BODY if escaped else _STANDARD_BODY).fullmatch(raw, opening)
        if body is None:
            return "a string the server reads otherwise"
        inner = raw[opening:-1]
        if (_unescape(inner) if escaped else inner.replace("''", "'")) != tok.text:
            return "a string the server reads with another value"
        escape_state, prev_end = escaped, tok.end
    return None
