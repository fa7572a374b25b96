"""Nothing the packages serve or show makes a browser fetch an asset from the internet at run time.

The console, the gateway and notebooks' HTML must work offline and behind firewalls, and must not tell a
third party who uses them: icons, fonts, scripts and styles come from the package itself.
"""

from __future__ import annotations

import re

from tests.helpers import ROOT

PACKAGES = ("console", "gateway_server", "mcpgw_sdk")
SUFFIXES = {".py", ".html", ".css", ".js", ".svg", ".json", ".yaml", ".toml", ".ipynb"}
URL = re.compile(r"""https?://[^\s"'`<>)\\]+""", re.IGNORECASE)
#: hosts that serve web assets (fonts, icons, scripts, styles)
ASSET_HOSTS = re.compile(r"(^|\.)(fonts\.googleapis\.com|fonts\.gstatic\.com|gstatic\.com|ajax\.googleapis\.com|"
                         r"unpkg\.com|jsdelivr\.net|cdnjs\.cloudflare\.com|bootstrapcdn\.com|fontawesome\.com|"
                         r"twemoji\.maxcdn\.com|cdn\.[a-z0-9.-]+)$", re.IGNORECASE)
ASSET_PATHS = re.compile(r"\.(css|js|mjs|woff2?|ttf|otf|eot|svg|png|jpe?g|gif|ico|webp)(\?|#|$)", re.IGNORECASE)
LOCAL = re.compile(r"^(localhost|127\.0\.0\.1|\[::1\]|0\.0\.0\.0|[a-z]|h|x|www\.w3\.org|[a-z0-9.-]*example\.(com|org))"
                   r"(:\d+)?$", re.IGNORECASE)


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                yield path


def remote_assets(text: str) -> list[str]:
    """The URLs in ``text`` that point at a web asset on another host (a CDN, a font or icon service)."""
    found = []
    for url in URL.findall(text):
        host = url.split("://", 1)[1].split("/", 1)[0].split("@")[-1]
        if "{" in host or LOCAL.match(host):  # a template (http://{host}:{port}) or a local/example host
            continue
        path = url.split("://", 1)[1][len(host):]
        if ASSET_HOSTS.search(host.split(":")[0]) or ASSET_PATHS.search(path):
            found.append(url)
    return found


def test_the_checker_finds_what_it_looks_for():
    assert remote_assets('<link href="https://fonts.googleapis.com/css2?family=Inter">') == [
        "https://fonts.googleapis.com/css2?family=Inter"]
    assert remote_assets("src='https://cdn.jsdelivr.net/npm/x@1/x.min.js'")
    assert remote_assets("https://unpkg.com/react")
    assert remote_assets("https://assets.vendor.io/logo.png")
    assert not remote_assets('xmlns="http://www.w3.org/2000/svg" base="https://api.openai.com/v1" '
                             'f"http://{host}:{port}/mcp" http://127.0.0.1:5236/users.json')


def test_no_package_source_fetches_a_remote_asset():
    found = {str(path.relative_to(ROOT)): hits for path in _sources()
             if (hits := remote_assets(path.read_text(encoding="utf-8", errors="replace")))}
    assert not found, f"assets fetched from the internet at run time (ship them in the package): {found}"


def test_the_console_icon_is_a_file_of_the_package():
    # Streamlit turns a ":material/…:" page_icon into a fonts.gstatic.com URL the browser fetches for the
    # tab icon (the sidebar's material icons come from a font bundled with Streamlit: those stay).
    text = (ROOT / "console" / "app.py").read_text()
    assert not re.search(r"page_icon\s*=\s*['\"]:material/", text)
    assert "page_icon=FAVICON" in text and 'FAVICON = HERE / "assets" / "favicon.svg"' in text
    icon = (ROOT / "console" / "assets" / "favicon.svg").read_text()
    assert icon.lstrip().startswith("<svg") and not remote_assets(icon)
