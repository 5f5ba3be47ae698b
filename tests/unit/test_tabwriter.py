"""The elastic-tab layout of the reference CLI tables (expected texts from the reference)."""

from __future__ import annotations

from mirrorbits.ctl.tabwriter import TabWriterConfig, tabulate


def test_column_rounded_up_to_tab_stops() -> None:
    text = (
        "Identifier \tSTATE\tSINCE\ntoronto \tup \t(x)\nwarsaw \tup \t(x)\n"
        "johannesburg \tup \t(x)\n"
    )
    assert tabulate(text) == (
        "Identifier \tSTATE\tSINCE\n"
        "toronto \tup \t(x)\n"
        "warsaw \t\tup \t(x)\n"
        "johannesburg \tup \t(x)\n"
    )


def test_cell_filling_its_column_gets_no_tab() -> None:
    # Reference `list -down`: "up/down " is exactly 8 wide, so nothing separates the date.
    text = (
        "Identifier \tSTATE\tSINCE\n"
        "valencia \tup/down \t(Wed, 25 Nov 2026 01:54:42 UTC)\n"
        "reykjavik \tdown \t(Mon, 01 Jan 0001 00:00:00 UTC)\n"
    )
    assert tabulate(text) == (
        "Identifier \tSTATE\tSINCE\n"
        "valencia \tup/down (Wed, 25 Nov 2026 01:54:42 UTC)\n"
        "reykjavik \tdown \t(Mon, 01 Jan 0001 00:00:00 UTC)\n"
    )


def test_reference_stats_file_table() -> None:
    text = (
        "/ANNOUNCE.md:\t3\n/media/install image.img:\t3\n/pool:\t1\n"
        "/pool/contrib/extras-0.9.zip:\t2\n/pool/main/tool_2.4.1_amd64.deb:\t1\n"
        "/pool/main/tool_2.4.1_arm64.deb:\t4\n/pool/main/unmirrored_1.0.orig.tar.xz:\t2\n"
        "\t\nTotal download requests: \t16\n"
    )
    assert tabulate(text) == (
        "/ANNOUNCE.md:\t\t\t\t3\n/media/install image.img:\t\t3\n/pool:\t\t\t\t\t1\n"
        "/pool/contrib/extras-0.9.zip:\t\t2\n/pool/main/tool_2.4.1_amd64.deb:\t1\n"
        "/pool/main/tool_2.4.1_arm64.deb:\t4\n/pool/main/unmirrored_1.0.orig.tar.xz:\t2\n"
        "\t\t\t\t\t\nTotal download requests: \t\t16\n"
    )


def test_empty_cell_is_padded_and_exact_width_cells_touch() -> None:
    # Reference `stats file '\.deb$'`: the 32-wide cells are followed by their value directly.
    text = (
        "/pool/main/tool_2.4.1_amd64.deb:\t1\n/pool/main/tool_2.4.1_arm64.deb:\t4\n"
        "\t\nTotal download requests: \t5\n"
    )
    assert tabulate(text) == (
        "/pool/main/tool_2.4.1_amd64.deb:1\n/pool/main/tool_2.4.1_arm64.deb:4\n"
        "\t\t\t\t\nTotal download requests: \t5\n"
    )


def test_line_without_cells_ends_the_column_blocks() -> None:
    text = "a\tb\nlonger text\tc\nno tabs at all\nx\ty\n"
    assert tabulate(text) == "a\t\tb\nlonger text\tc\nno tabs at all\nx\ty\n"


def test_nested_blocks_size_later_columns_separately() -> None:
    # Column 1 exists only on the first two lines: the third line starts a new block there.
    text = "a\tbbbbbbbbbb\tc\na\tb\tc\na\tb\n"
    assert tabulate(text) == "a\tbbbbbbbbbb\tc\na\tb\t\tc\na\tb\n"


def test_last_cell_of_a_line_is_not_aligned_and_unterminated_text_kept() -> None:
    assert tabulate("abc\tdefghijklmnop\nx\ty") == "abc\tdefghijklmnop\nx\ty"


def test_width_counts_characters_not_bytes() -> None:
    assert tabulate("São Paulo\tx\nab\ty\n") == "São Paulo\tx\nab\t\ty\n"


def test_space_padding_variant() -> None:
    config = TabWriterConfig(min_width=0, tab_width=8, padding=1, pad_char=" ")
    assert tabulate("a\tb\nccc\td\n", config) == "a   b\nccc d\n"
