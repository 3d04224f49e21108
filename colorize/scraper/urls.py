"""URL and name rules shared by the harvester, the downloader and `fetch`: what is trusted, what is not.

Everything that comes from a web page or a shared manifest is untrusted: an id becomes part of a file
name only after matching `ID_RE`; a category only after matching `CATEGORY_RE` (patterns end in `\\Z`, used
with fullmatch: `$` also matches before a final newline); an image URL is fetched only over http(s) and
only from a host `hosts.HostPolicy` allows (`is_photo_url` tells a photo's picture on a search page).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit, urlunsplit

from colorize.errors import ColorizeError, UsageError
from colorize.names import reserved_reason

ID_RE = re.compile(r"^[A-Za-z0-9_-]{11}\Z")
CATEGORY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
UNSPLASH_IMAGE_HOSTS = ("images.unsplash.com", "plus.unsplash.com")
# The path of a photo picture on the image CDN (the regex seen in scrapers, with vectors added).
IMAGE_PATH_RE = re.compile(r"^/(?:(?:flagged/)?(?:premium_)?(?:photo|vector)-\d+-[\w-]+|reserve/[^/?#]+)\Z")
LICENSE = {"name": "Unsplash License", "url": "https://unsplash.com/license"}


def check_id(pid: object) -> str:
    """`pid` if it is a valid photo id, else a ColorizeError (ids become file names)."""
    if not isinstance(pid, str) or not ID_RE.fullmatch(pid):
        raise ColorizeError(f"invalid photo id {str(pid)[:40]!r}", "ids are 11 letters, digits, '-' or '_'")
    return pid


def check_category(name: object) -> str:
    """`name` if it is safe as a folder name (no separators, no dots first, not one of our own file
    names: `colorize.names`), else a usage error."""
    if not isinstance(name, str) or not CATEGORY_RE.fullmatch(name):
        raise UsageError(f"invalid category name {str(name)[:40]!r}",
                         "use letters, digits, '-', '_' or '.', starting with a letter or digit (e.g. new-york)")
    if (why := reserved_reason(name)) is not None:
        raise UsageError(f"reserved category name {name!r}: {why}", "choose another category name (e.g. add a suffix)")
    return name


def photo_file(category: str, pid: str) -> str:
    """The dataset-relative POSIX path of a photo (contract: `<category>/<id>.jpg`)."""
    return f"{check_category(category)}/{check_id(pid)}.jpg"


def host_of(url: str) -> str:
    """`host[:port]` of a URL, lower-cased."""
    return urlsplit(url).netloc.lower()


def is_http(url: object) -> bool:
    return isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and bool(urlsplit(url).netloc)


def bare_url(url: str) -> str:
    """The URL without query and fragment (drops `ixid`, `ixlib`, `auto=format`, sizes)."""
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, p.path, "", ""))


def is_premium(url: str) -> bool:
    """Unsplash+ or an illustration, told by host (`plus.`) or path, so the rule holds on any host."""
    p = urlsplit(url)
    return p.netloc.lower().startswith("plus.") or "premium_photo-" in p.path or "premium_vector-" in p.path


def is_vector(url: str) -> bool:
    return "premium_vector-" in urlsplit(url).path


def is_photo_url(url: str, base_url: str) -> bool:
    """An http(s) URL of a photo picture on an Unsplash image host or on the base URL's host."""
    if not is_http(url):
        return False
    p = urlsplit(url)
    host = p.netloc.lower()
    return (host in UNSPLASH_IMAGE_HOSTS or host == host_of(base_url)) and bool(IMAGE_PATH_RE.fullmatch(p.path))


def download_url(bare: str, width: int) -> str:
    """The exact URL fetched: explicit JPEG parameters, never `auto=format` (bytes would vary by client)."""
    query = urlencode([("fm", "jpg"), ("q", "85"), ("w", str(int(width))), ("fit", "max"), ("cs", "srgb")])
    return f"{bare_url(bare)}?{query}"


def query_params(width: int) -> dict[str, object]:
    """The parameters recorded in the manifest header."""
    return {"license": "free", "fm": "jpg", "q": 85, "w": int(width), "fit": "max", "cs": "srgb"}


def search_url(base_url: str, query: str) -> str:
    """`<base>/s/photos/<query>?license=free` (spaces become `-`, like the site does)."""
    from urllib.parse import quote

    slug = "-".join(query.strip().split())
    return f"{base_url.rstrip('/')}/s/photos/{quote(slug, safe='-_.~')}?license=free"


def browser_hosts(base_url: str) -> tuple[str, ...]:
    """Hosts the scraping browser may resolve: the site itself (and, for a real domain, its subdomains)."""
    host = urlsplit(base_url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        return (host,)
    return (host, f"*.{host}", "*.unsplash.com", "*.imgix.net")
