"""Which library a web request is about, when one service runs several (issue 30 item 4).

Pages take ``?library=NAME``; actions (POST under ``/api/``) take a
``library`` field in their JSON body. With one library, neither is needed and
every route answers exactly as before. With several, a page without one shows
the overview (or the first library, for the pages of one library), and an
action without one is a 400 naming the libraries: acting on a guessed library
is worse than asking. Paths route themselves: an absolute path (or an *arr's
path after ``[web] arr_path_map``) belongs to the library whose source holds
it -- libraries never overlap (refused at start), so at most one does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from graylink.config import Config
from graylink.web.arrpaths import OutsideSource


class LibraryError(ValueError):
    """A request named no library, or one that does not exist: answered 400 (404 for pages) with this reason."""


@dataclass(frozen=True)
class Views:
    """Every library's view of the config, in config order (the first is the default one when configured)."""

    all: tuple[Config, ...]

    @property
    def names(self) -> list[str]:
        return [view.name for view in self.all]

    @property
    def several(self) -> bool:
        return len(self.all) > 1

    def named(self, name: str) -> Config:
        for view in self.all:
            if view.name == name:
                return view
        raise LibraryError(f"no library {name!r} (libraries: {', '.join(self.names)})")

    def chosen(self, name: object) -> Config:
        """The library an action names; the only one when it names none; :class:`LibraryError` otherwise."""
        if name is None or name == "":
            if self.several:
                raise LibraryError(
                    f'several libraries: send "library" in the JSON body, one of: {", ".join(self.names)}'
                )
            return self.all[0]
        if not isinstance(name, str):
            raise LibraryError(f'"library" must be a string, one of: {", ".join(self.names)}')
        return self.named(name)

    def page(self, name: str | None) -> Config | None:
        """The library a page shows: the named one, else the only one, else None (the overview)."""
        if name:
            return self.named(name)
        return None if self.several else self.all[0]

    def holding(self, locate: Callable[[Config], bytes]) -> tuple[Config, bytes] | None:
        """The library whose source holds the path ``locate`` maps (it raises OutsideSource for the others).

        Any other PathError (a NUL, a ``..``) is the path's own fault, the same for every library: raised."""
        for view in self.all:
            try:
                return view, locate(view)
            except OutsideSource:
                continue
        return None


def views_of(libraries: Sequence[Config]) -> Views:
    return Views(tuple(libraries))


def library_field(doc: Any) -> object:
    return doc.get("library") if isinstance(doc, dict) else None


class Served(Protocol):
    """What the pages need of the app's context (graylink.web.app.WebContext)."""

    @property
    def config(self) -> Callable[[], Config]: ...

    def libraries(self) -> Views: ...

    def wake_for(self, names: tuple[str, ...]) -> None: ...

    def whole_config(self) -> Config: ...
