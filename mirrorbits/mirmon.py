"""The Mirmon mirror list (spec §16): ``export mirmon``'s text (pure); its file is replaced
at once by :func:`mirrorbits.files.replace_file`."""

from __future__ import annotations

from collections.abc import Iterable

from mirrorbits.ctl.tabwriter import tabulate
from mirrorbits.model import Mirror

__all__ = ["mirmon_list"]


def mirmon_list(mirrors: Iterable[Mirror], *, rsync: bool = True, http: bool = True,
                ftp: bool = True, disabled: bool = True) -> str:
    """``<country>\\t<url>\\t<admin email>`` per URL, through the reference's tab writer.

    URLs in order rsync, HTTP (a scheme-less one twice: ``http://`` then ``https://``), FTP;
    ``disabled=False`` leaves disabled mirrors out. A mirror without a country code is exported
    with ``--`` (the reference crashed).
    """
    rows: list[str] = []
    for mirror in mirrors:
        if not mirror.enabled and not disabled:
            continue
        countries = mirror.country_fields
        country = countries[0] if countries else "--"
        urls: list[str] = []
        if rsync and mirror.rsync_url:
            urls.append(mirror.rsync_url)
        if http and mirror.http_url:
            if mirror.http_url.startswith(("http://", "https://")):
                urls.append(mirror.http_url)
            else:
                urls += [f"http://{mirror.http_url}", f"https://{mirror.http_url}"]
        if ftp and mirror.ftp_url:
            urls.append(mirror.ftp_url)
        rows.extend(f"{country}\t{url}\t{mirror.admin_email}\n" for url in urls)
    return tabulate("".join(rows))


