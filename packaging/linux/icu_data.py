"""A smaller ICU data library for the Linux bundle: what Qt's ICU-backed features need, in English.

PySide6's Qt links to ICU, whose data library (`libicudata.so.NN`) is one 32 MB array: every locale's
names of languages, regions, currencies, units and time zones, transliterators, number spell-out rules,
CJK and South-East Asian word dictionaries, and East Asian legacy encodings. In AVA, Qt reaches ICU only
for collation (QCollator), time-zone display names (QTimeZone), legacy encodings (QStringConverter) and
locale-aware case mapping (code in libicuuc, no data); Qt's own CLDR tables do QLocale's formatting.

`trim()` rebuilds the library with the items that keep those working for English and the root locale
(other locales fall back to root, as ICU does for any locale it lacks):
- every non-locale item (normalisation, properties, converter aliases, time-zone rules, likely
  subtags, plural rules, break-iterator rules, the root collation table);
- locale bundles of `root` and `en*` only, in every tree (main, coll, zone, curr, lang, region, unit,
  rbnf, brkitr);
- single-byte and small converters, and the web's multi-byte ones (GB18030, GBK, Big5, Shift_JIS,
  EUC-JP, EUC-KR); not the other large East Asian and EBCDIC tables (over 16 kB each);
- no transliterators and no word dictionaries (Qt's text boundaries are its own).
`ava-tray --self-test` checks collation, a time-zone name and a legacy encoding in the frozen app.

The package format (ICU's "CmnD" common data): a data header, then a table of contents (`count`, then
`count` pairs of name offset and data offset, both from the start of the table), the NUL-terminated item
names, and the items, each 16-byte aligned. The items are copied byte for byte; only the table changes.

    python packaging/linux/icu_data.py SOURCE.so TARGET.so   # prints the sizes before and after
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ALIGNMENT = 16
FILLER = b"\xaa"
"""What icupkg pads with; with it, a package written back unchanged is byte for byte the original."""
LARGE_CONVERTER_BYTES = 16 * 1024
WEB_CONVERTERS = frozenset({
    "gb18030.cnv", "ibm-1386_P100-2001.cnv", "ibm-1373_P100-2002.cnv", "ibm-943_P15A-2003.cnv",
    "euc-jp-2007.cnv", "ibm-970_P110_P110-2006_U2.cnv",
})
"""The large tables of the web's multi-byte encodings: GB18030, GBK and Big5 (the bases of windows-936/950),
Shift_JIS, EUC-JP, EUC-KR. Kept."""
KEPT_LANGUAGE = "en"
DROPPED_TREES = ("translit/",)
LOCALE_BUNDLE = re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]+)*\.res$")
NOT_LOCALES = frozenset({"res_index.res", "pool.res", "root.res"})


class IcuDataError(Exception):
    """The library is not an ICU data library this script understands."""


@dataclass(frozen=True)
class Item:
    """One entry of the package: its full name (`icudt73l/coll/root.res`) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Package:
    """An ICU common data package: its header (copied as it is) and its items in table order."""

    header: bytes
    items: list[Item]


# --- the package format -----------------------------------------------------------------------------


def parse(blob: bytes) -> Package:
    """Read a common data package ("CmnD")."""
    if len(blob) < 32 or blob[2:4] != b"\xda\x27":
        raise IcuDataError("not ICU data (no 0xda27 magic)")
    (header_size,) = struct.unpack_from("<H", blob, 0)
    if blob[12:16] != b"CmnD":
        raise IcuDataError(f"not an ICU common data package (format {blob[12:16]!r})")
    toc = header_size
    (count,) = struct.unpack_from("<I", blob, toc)
    entries = [struct.unpack_from("<II", blob, toc + 4 + 8 * i) for i in range(count)]
    items = []
    for index, (name_offset, data_offset) in enumerate(entries):
        name_end = blob.index(b"\0", toc + name_offset)
        end = entries[index + 1][1] if index + 1 < count else len(blob) - toc
        items.append(Item(blob[toc + name_offset:name_end].decode("ascii"), blob[toc + data_offset:toc + end]))
    return Package(blob[:header_size], items)


def _pad(size: int) -> int:
    return -size % ALIGNMENT


def to_bytes(package: Package) -> bytes:
    """Write a package: the header, the table of contents (names sorted, as ICU searches it), the items."""
    items = sorted(package.items, key=lambda item: item.name.encode("ascii"))
    names = b"".join(item.name.encode("ascii") + b"\0" for item in items)
    table_size = 4 + 8 * len(items)
    names_end = table_size + len(names)
    data_start = names_end + _pad(len(package.header) + names_end)
    offsets, position, name_position = [], data_start, table_size
    for item in items:
        offsets.append((name_position, position))
        name_position += len(item.name) + 1
        position += len(item.data) + _pad(len(item.data))
    out = bytearray(package.header)
    out += struct.pack("<I", len(items))
    for name_offset, data_offset in offsets:
        out += struct.pack("<II", name_offset, data_offset)
    out += names
    out += FILLER * (len(package.header) + data_start - len(out))
    for item in items:
        out += item.data + FILLER * _pad(len(item.data))
    return bytes(out)


# --- what is kept ----------------------------------------------------------------------------------


def keep(item: Item) -> bool:
    """True for the items AVA's Qt needs (see the module's docstring)."""
    _prefix, _, path = item.name.partition("/")
    if path.startswith(DROPPED_TREES) or path.endswith(".dict"):
        return False
    if path.endswith(".cnv"):
        return len(item.data) <= LARGE_CONVERTER_BYTES or path in WEB_CONVERTERS
    base = path.rpartition("/")[2]
    if LOCALE_BUNDLE.match(base) and base not in NOT_LOCALES:
        language = base.removesuffix(".res").split("_")[0]
        return language == KEPT_LANGUAGE
    return True


def trimmed(package: Package) -> Package:
    return Package(package.header, [item for item in package.items if keep(item)])


# --- the shared library ----------------------------------------------------------------------------

_ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_SECTION = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_SHT_DYNSYM = 11


def read_library(path: Path) -> tuple[str, bytes]:
    """The data symbol's name (`icudt73_dat`) and the package it holds, from an ELF64 libicudata."""
    elf = path.read_bytes()
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise IcuDataError(f"{path} is not a little-endian ELF64 library")
    fields = _ELF_HEADER.unpack_from(elf, 0)
    section_offset, section_size, section_count = fields[6], fields[11], fields[12]
    sections = [_SECTION.unpack_from(elf, section_offset + i * section_size) for i in range(section_count)]
    for section in sections:
        if section[1] != _SHT_DYNSYM:
            continue
        strings = sections[section[6]]
        for offset in range(section[4], section[4] + section[5], _SYMBOL.size):
            name_index, _info, _other, shndx, value, size = _SYMBOL.unpack_from(elf, offset)
            start = strings[4] + name_index
            name = elf[start:elf.index(b"\0", start)].decode("ascii")
            if re.fullmatch(r"icudt\d+_dat", name) and 0 < shndx < len(sections):
                holder = sections[shndx]
                file_offset = holder[4] + value - holder[3]
                return name, elf[file_offset:file_offset + size]
    raise IcuDataError(f"{path} has no icudtNN_dat symbol")


def write_library(blob: bytes, symbol: str, soname: str, target: Path) -> None:
    """A shared library named `soname` that exports `symbol`, 16-byte aligned, holding `blob` (needs gcc)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise IcuDataError("gcc is needed to build the trimmed ICU data library: apt-get install gcc")
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "icudata.dat"
        data.write_bytes(blob)
        source = Path(folder) / "icudata.S"
        source.write_text(
            f'    .section .rodata\n    .globl {symbol}\n    .type {symbol}, @object\n    .balign {ALIGNMENT}\n'
            f'{symbol}:\n    .incbin "{data}"\n    .size {symbol}, . - {symbol}\n'
            '    .section .note.GNU-stack,"",@progbits\n'
        )
        subprocess.run([compiler, "-shared", "-nostdlib", f"-Wl,-soname,{soname}", "-Wl,-z,noexecstack",
                        "-Wl,--build-id", "-s", "-o", str(target), str(source)], check=True)


def trim(source: Path, target: Path) -> tuple[int, int]:
    """Write the trimmed library for `source` to `target`; the file sizes before and after."""
    symbol, blob = read_library(source)
    write_library(to_bytes(trimmed(parse(blob))), symbol, source.name, target)
    return source.stat().st_size, target.stat().st_size


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().rsplit("\n", 1)[-1].strip(), file=sys.stderr)
        return 2
    try:
        before, after = trim(Path(argv[0]), Path(argv[1]))
    except (OSError, IcuDataError, subprocess.CalledProcessError) as exc:
        print(f"icu_data: {exc}", file=sys.stderr)
        return 1
    print(f"icu_data: {argv[0]} {before / 1e6:.1f} MB -> {argv[1]} {after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
