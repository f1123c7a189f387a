"""packaging/linux/icu_data.py on PySide6's real ICU data library, loaded in place of the original.

The trimmed library is put in front of Qt with LD_PRELOAD (the dynamic linker then takes it for
`libicudata.so.NN`), and the self-test's text-services check runs against it: the same check the
frozen app runs in test_installed.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PySide6 ships ICU on Linux only")

CHECK_TEXT_SERVICES = """
from PySide6.QtCore import QCoreApplication
from ava_tray.selftest import _run, check_text_services
app = QCoreApplication([])
print(_run("text services", check_text_services)[0].line())
"""


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("icu_data", REPO / "packaging" / "linux" / "icu_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["icu_data"] = module
    spec.loader.exec_module(module)
    return module


icu_data = _load()


@pytest.fixture(scope="module")
def original() -> Path:
    import PySide6

    found = sorted((Path(PySide6.__file__).parent / "Qt" / "lib").glob("libicudata.so.*"))
    if not found:
        pytest.skip("this PySide6 has no bundled ICU")
    return found[0]


def _text_services_with(library: Path) -> str:
    env = dict(os.environ, LD_PRELOAD=str(library), QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-c", CHECK_TEXT_SERVICES], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_package_written_back_unchanged_is_the_original(original: Path) -> None:
    _symbol, blob = icu_data.read_library(original)
    assert icu_data.to_bytes(icu_data.parse(blob)) == blob


def test_trimmed_package_keeps_what_qt_uses_in_english(original: Path) -> None:
    _symbol, blob = icu_data.read_library(original)
    package = icu_data.parse(blob)
    kept = {item.name.partition("/")[2] for item in icu_data.trimmed(package).items}
    assert {"coll/root.res", "coll/ucadata.icu", "root.res", "en.res", "en_GB.res", "zone/en.res", "zoneinfo64.res",
            "metaZones.res", "cnvalias.icu", "brkitr/root.res", "res_index.res", "pool.res", "coll/res_index.res",
            "gb18030.cnv", "ibm-5348_P100-1997.cnv"} <= kept
    assert not {"de.res", "coll/zh.res", "zone/fr.res", "brkitr/cjdict.dict", "translit/root.res",
                "euc-tw-2014.cnv"} & kept
    before, after = len(blob), icu_data.to_bytes(icu_data.trimmed(package)).__len__()
    print(f"ICU data {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB (ratio {after / before:.2f})")
    assert after < before / 4


def test_qt_text_services_work_on_the_trimmed_library(original: Path, tmp_path: Path) -> None:
    target = tmp_path / original.name
    assert icu_data.main([str(original), str(target)]) == 0
    line = _text_services_with(target)
    assert line == ("OK    text services: collation, time-zone names (Central European Standard Time), "
                    "8 legacy encodings")


def test_the_check_fails_when_collation_data_is_missing(original: Path, tmp_path: Path) -> None:
    """The control for the test above: the same check on a library without the collation tree."""
    symbol, blob = icu_data.read_library(original)
    package = icu_data.trimmed(icu_data.parse(blob))
    package = icu_data.Package(package.header, [item for item in package.items if "/coll/" not in item.name])
    target = tmp_path / original.name
    icu_data.write_library(icu_data.to_bytes(package), symbol, original.name, target)
    assert _text_services_with(target) == (
        "FAIL  text services: collation data missing: QCollator sorts 'résumé' after 'rf'")


def test_not_icu_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert icu_data.main([sys.executable, str(tmp_path / "out.so")]) == 1
    assert "has no icudtNN_dat symbol" in capsys.readouterr().err
    text = tmp_path / "text.so"
    text.write_text("not a library")
    assert icu_data.main([str(text), str(tmp_path / "out.so")]) == 1
    assert "is not a little-endian ELF64 library" in capsys.readouterr().err
    assert not (tmp_path / "out.so").exists()
