"""What a post is about, for trend counting: its content words, names and hashtags.

Read from the post's prepared text (`ima.text.analysis.prepare`: NFKC, links gone, Japanese
already split into words by MeCab), lowercased, without stemming, so that a trend's
words are the posts' own. Function words (English, Japanese, Spanish, Portuguese,
Italian, French, Tagalog), numbers, one-letter words and Japanese words written only
in hiragana (particles, endings) are left out: they are never news. So are the pieces
of real tweets that are not words: the retweet prefix, @handles, and what is left of
links once a client has cut them short ("http://t.co/Ab…", "bit.ly/x", "http…").
"""

from __future__ import annotations

import re
from itertools import chain

from ima.text.copies import manual_retweet
from ima.text.question import STOP_WORDS

COPY_WORDS = 8  # a text's first words say which text it is
KEY_CHARS = 200  # and are found in its first characters

_WORD = re.compile(r"#?[^\W_][^\W_'’-]*(?:['’-][^\W_]+)*")
_MEANINGFUL_CJK = re.compile(r"[\u3005\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
# a token that is no word: an @handle, a link a full URL pattern misses (cut short,
# without a scheme), a bare scheme or a word a client cut short ("Goes…")
_NOT_A_WORD = re.compile(r"@|/|^(?:h|ht|htt|https?)(?::|$)|^www\.|…$|\.\.\.$", re.IGNORECASE)
# what every such token has, but "..." and a bare "http:" (rare, and left in): a copy
# key of a text without any is its first words as they are, which is most texts and cheaper
_SUSPECT = re.compile(r"[@/…]")
_EXTRA_STOP = frozenset(
    """the be to of and a in that have it for not on with he as you do at this but his by
    from they we say her she or an will my one all would there their what so up out if
    about who get which go me when make can like time no just him know take into year
    your good some could them see other than then now look only come its over think also
    back after use two how our work first well way even new want because any these give
    day most us is are was were been has had did got am im i'm it's don't can't yes
    really much many very lol omg oh ok okay too here more still just being going every
    never always thing things something someone anyone nothing everything
    rt via amp http https htt www com html php""".split()
)
# the commonest function words of the other languages real streams bring
_OTHER_STOP = frozenset(
    """de la que el en los del las por con para una uno unos unas est esta este esto estos
    estas son fue han hay más mas pero sus como sobre entre sin desde hasta muy ya le les
    lo se su al es ni nos mi tu te yo él ella ellos cuando donde porque todo todos todas
    otro otra hoy así tras según durante ante bajo
    não nao com uma um os as do da dos das no na nos nas em por para pelo pela mais mas
    foi são ser tem ter seu sua seus suas ele ela eles isso isto esse essa este esta
    il lo gli le un una di da in con su per tra fra che non più sono è era del della dei
    delle degli al allo alla ai agli alle dal dalla nel nella sul sulla anche come dopo
    ci si ha hanno questo questa quello quella
    le la les des du de et un une est sont dans pour par sur pas plus avec ce cette qui
    ang ng sa mga na ay si ni kay at ito iyan iyon mo ko ka siya sila kami tayo natin
    namin nila niya lang po pa din rin hindi may wala para nang naman""".split()
)
STOP = STOP_WORDS | _EXTRA_STOP | _OTHER_STOP


class _Tokens(dict[str, tuple[str, ...]]):
    """Each token's items, as written (split on spaces), remembered: a stream writes the
    same tokens again and again, so most of a post is looked up rather than read with a
    pattern and judged word by word (that was most of what counting a post cost). A
    token not yet known is judged by `__missing__`, so a post is looked up in one pass
    in C. Holds at most `limit` tokens of at most `longest` characters; forgets all
    when full."""

    def __init__(self, limit: int = 100_000, longest: int = 40) -> None:
        super().__init__()
        self.limit = limit
        self.longest = longest

    def __missing__(self, token: str) -> tuple[str, ...]:
        """The items of a token not yet known: none for one that is no word (`_NOT_A_WORD`)."""
        found: tuple[str, ...] = ()
        if not _NOT_A_WORD.search(token):
            found = tuple(w for w in _WORD.findall(token.lower()) if _is_item(w))
        if len(token) <= self.longest:
            if len(self) >= self.limit:
                self.clear()
            self[token] = found
        return found


def _is_item(word: str) -> bool:
    """Is a lowercased word an item? A word of a spaced script needs three letters and
    must not be a function word or a number; a Japanese word (it starts with kana or
    kanji) needs two characters, one of them kanji or katakana."""
    if word.isascii() or not (
        (meaningful := _MEANINGFUL_CJK.search(word)) or "\u3040" <= word[0] <= "\u309f"
    ):
        bare = word.lstrip("#")
        return len(bare) >= 3 and bare not in STOP and not bare.isdigit()
    return len(word) >= 2 and word not in STOP and meaningful is not None


_tokens = _Tokens()


def items_of(prepared: str) -> set[str]:
    """The distinct trend items of one post's prepared text."""
    return set(chain.from_iterable(map(_tokens.__getitem__, prepared.split())))


def _key(own: str) -> int:
    """What a post says, for telling copies apart: its first words without handles and
    links (a retweet is often cut short, and its link shortened), as written."""
    head = own[:KEY_CHARS]
    if "..." in head or _SUSPECT.search(head) is not None:
        tokens = [t for t in head.split() if not _NOT_A_WORD.search(t)]
        return hash(tuple(tokens[:COPY_WORDS]))
    return hash(tuple(head.split(None, COPY_WORDS)[:COPY_WORDS]))


class Tellings:
    """Whom a post counts for. A manual retweet ("RT @x: …") is a copy: the first one
    seen of a text counts once, for the author it credits, and later ones (or ones of a
    text already posted) not at all. Remembers the last `limit` texts or so."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._new: set[int] = set()
        self._old: set[int] = set()

    def author_of(self, text: str, author: str) -> str | None:
        """The author `text` counts for, or None when it is a copy of one counted."""
        retweet = manual_retweet(text)
        key = _key(text if retweet is None else retweet.text)
        seen = key in self._new or key in self._old
        if not seen:
            if len(self._new) >= self.limit:
                self._old, self._new = self._new, set()
            self._new.add(key)
        if retweet is None:
            return author
        return None if seen else retweet.handle.lower()
