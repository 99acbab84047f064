"""The benchmark page's plots and tables, drawn from the committed results (benchmarks/results/).

    python docs/results.py [RESULTS_DIR] [OUT_DIR]      # the plots alone

Run by the docs build (docs/hooks.py): plots go into docs/benchmarks/plots/, which is not
committed, and a marker ``<!-- results: NAME -->`` in a page becomes the table of
benchmarks/results/NAME.json. A figure on the page is always the committed output of the command
the page names, never a number typed by hand.
"""
import glob
import json
import os
import sys


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _label(r):
    names = {"fastprep-exact": "fastprep exact", "fastprep-fast": "fastprep fast",
             "ceiling": "libjpeg-turbo decode", "torchvision": "torchvision v2", "pil": "torchvision v1 (PIL)",
             "dali": "DALI (CPU)"}
    return names.get(r["pipeline"], r["pipeline"])


def plot_bench(rep, path, title):
    """fastprep bench's JSON: img/s per pipeline, one group of bars per thread count."""
    plt = _plt()
    threads = rep["threads"]
    pipelines = []
    for r in rep["results"]:
        if r["pipeline"] not in pipelines:
            pipelines.append(r["pipeline"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(pipelines) * len(threads) + 1.6))
    y, labels, vals, colors = 0, [], [], []
    for t in threads:
        for p in pipelines:
            row = next((r for r in rep["results"] if r["pipeline"] == p and r["threads"] == t), None)
            if row is None:
                continue
            labels.append(f"{_label(row)}, {t} thread{'s' if t > 1 else ''}")
            vals.append(row["images_per_s"])
            colors.append("#d62728" if p.startswith("fastprep") else "#1f77b4")
            y += 1
    ax.barh(range(len(vals))[::-1], vals, color=colors)
    ax.set_yticks(range(len(vals))[::-1])
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("images per second (higher is better)")
    m = rep.get("machine", {})
    ax.set_title(f"{title}\n{rep['transform']} {rep['size']}px, {rep['files']} files, {m.get('cpu', '?')}, "
                 f"{rep.get('date', '')}", fontsize=9)
    _save(plt, fig, path)


def plot_instructions(data, path):
    """bench_instructions.py's JSON: instructions per image by stage, stacked."""
    plt = _plt()
    per = data["per_image"]
    stages = ["decode", "hpass", "vpass", "output", "tables", "ops", "other"]
    names = list(per)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.6))
    left = [0.0] * len(names)
    for s in stages:
        vals = [per[n].get(s, 0.0) / 1e6 for n in names]
        ax.barh(names[::-1], vals[::-1], left=left[::-1], label=s)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("million instructions per image (callgrind, empty run subtracted)")
    ax.set_title(f"Instructions per stage, {data['count']} photos of {os.path.basename(data['folder'])}", fontsize=9)
    ax.legend(fontsize=8, ncol=3)
    _save(plt, fig, path)


def plot_gpu_feed(data, path):
    """bench_gpu_feed.py's JSON: training images/s against loader threads (its "summary": medians of rounds)."""
    plt = _plt()
    summ = data["summary"]
    fig, ax = plt.subplots(figsize=(7, 4))
    fp_t = sorted(summ.get("fastprep", {}), key=int)
    dl_w = sorted(summ.get("dataloader", {}), key=int)
    if fp_t:
        ax.plot([int(t) for t in fp_t], [summ["fastprep"][t]["train_img_s"] for t in fp_t], "o-", color="#d62728",
                label="fp.Loader(device='cuda')")
    if dl_w:
        ax.plot([int(w) for w in dl_w], [summ["dataloader"][w]["train_img_s"] for w in dl_w], "s-", color="#1f77b4",
                label="DataLoader(pin_memory=True) + torchvision v2")
    if summ.get("ceiling"):
        ax.axhline(summ["ceiling"], color="gray", ls="--", label="GPU alone (one batch kept on the GPU)")
    ax.set_xlabel("loader threads / DataLoader workers")
    ax.set_ylabel("training images per second (higher is better)")
    ax.set_title(f"ResNet-50 training steps (batch {data.get('batch')}, bf16) fed by each loader\n"
                 f"{data.get('device', '?')}, {data.get('cpus', '?')} CPU cores, torch {data.get('torch', '?')}",
                 fontsize=9)
    ax.legend(fontsize=8)
    _save(plt, fig, path)


TITLES = {"bench_sample": "fastprep bench, built-in sample data (synthetic)",
          "bench_wallpapers": "fastprep bench, Debian wallpaper crops (0.17 bytes/pixel)",
          "bench_detailed": "fastprep bench, detailed photos (0.41 bytes/pixel)",
          "bench_large": "fastprep bench, 8-20 MP photos (fast mode decodes them at reduced scale)"}


def main(results, out):
    plots = os.path.join(out, "plots")
    os.makedirs(plots, exist_ok=True)
    for old in glob.glob(os.path.join(plots, "*.png")):  # a plot whose result is gone goes too
        os.remove(old)
    made = []
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        data = json.load(open(path))
        target = os.path.join(plots, name + ".png")
        if "per_image" in data:
            plot_instructions(data, target)
        elif name.startswith("gpu_feed"):
            plot_gpu_feed(data, target)
        elif "results" in data and "speedup_reference" in data:
            plot_bench(data, target, TITLES.get(name.rsplit("_", 1)[0], name))
        else:
            continue
        made.append(target)
    return made


# ---------------------------------------------------------------------------------------------- tables

def _versions(v):
    fp_ = v.get("fastprep", {})
    parts = [f"fastprep {fp_.get('version', '?')}"]
    if fp_.get("codecs", {}).get("jpeg"):
        parts[0] += f" ({fp_['codecs']['jpeg']})"
    parts += [f"{k} {v[k]}" for k in ("numpy", "torch", "torchvision", "Pillow") if k in v]
    return ", ".join(parts)


def bench_table(rep):
    """fastprep bench's JSON as a table: img/s per pipeline and thread count, fastprep exact's
    speed-up over each row, and each row's share of the bare decode."""
    threads = rep["threads"]
    order = []
    for r in rep["results"]:
        if r["pipeline"] not in order:
            order.append(r["pipeline"])
    head = "| pipeline | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}: img/s | exact x | of decode"
                                         for t in threads) + " |"
    lines = [head, "|---|" + "---:|---:|---:|" * len(threads)]
    for p in order:
        cells = []
        for t in threads:
            row = next((r for r in rep["results"] if r["pipeline"] == p and r["threads"] == t), None)
            if row is None:
                cells += ["", "", ""]
                continue
            x = "-" if p == rep["speedup_reference"] else f"{row['fastprep_speedup']:.2f}x" + (
                "*" if row.get("estimate") == "block" else "")
            cells += [f"{row['images_per_s']:.0f}", x, f"{row['vs_ceiling']:.2f}"]
        name = _label({"pipeline": p})
        if p == rep["speedup_reference"]:
            name = f"**{name}**"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    m = rep.get("machine", {})
    skipped = "; ".join(f"{k} skipped ({v.split(';')[0]})" for k, v in rep.get("skipped", {}).items())
    lines.append("")
    lines.append(f"{rep['files']} files, {rep['transform']} at {rep['size']} px, float32 CHW normalized, median of "
                 f"{rep['repeat']} interleaved rounds; {m.get('cpu', '?')}, {m.get('cores', '?')} cores, SIMD "
                 f"{m.get('simd', '?')}; {_versions(rep.get('versions', {}))}; {rep.get('date', '')}."
                 + (f" {skipped}." if skipped else ""))
    return "\n".join(lines)


def instructions_table(data):
    """bench_instructions.py's JSON: millions of instructions per image, per stage."""
    per = data["per_image"]
    if any("+" in name for name in per):
        return op_cost_table(data)
    base = per.get("decode", {}).get("total")
    stages = ["decode", "hpass", "vpass", "output", "tables", "other"]
    if any(abs(row.get("splice", 0)) >= 5e3 for row in per.values()):
        stages.insert(5, "splice")
    names = {"hpass": "horizontal pass", "vpass": "vertical pass", "output": "output stage",
             "tables": "planning", "splice": "restart splice"}
    lines = ["| pipeline | " + " | ".join(names.get(s, s) for s in stages) + " | total | / bare decode |",
             "|---|" + "---:|" * (len(stages) + 2)]
    for name, row in per.items():
        vals = [f"{row[s] / 1e6:.2f}M" if abs(row[s]) >= 5e3 else "-" for s in stages]
        ratio = f"{row['total'] / base:.2f}" if base else ""
        label = "bare decode" if name == "decode" else name.replace("-", ", ")
        label = label.replace("@restart", ", restart-indexed (fastprep optimize)")
        lines.append(f"| {label} | " + " | ".join(vals) + f" | {row['total'] / 1e6:.2f}M | {ratio} |")
    lines.append("")
    lines.append(f"callgrind, {data['count']} photos of `{data['folder']}`, one thread, the empty run's "
                 "instructions subtracted" + (f"; {data['date']}" if data.get("date") else "") + ".")
    return "\n".join(lines)


def op_cost_table(data):
    """bench_instructions.py's JSON with train+NAME pipelines: each op's instructions per image,
    the recipe with the op minus the recipe without it."""
    per = data["per_image"]
    base = per["train"]
    lines = ["| op added to the train recipe | instructions per image (the op's stage) | "
             "instructions per image (whole recipe, minus train's) |", "|---|---:|---:|"]
    for name, row in per.items():
        if "+" not in name:
            continue
        lines.append(f"| {name.split('+', 1)[1]} | {row.get('ops', 0.0) / 1e6:.2f}M | "
                     f"{(row['total'] - base['total']) / 1e6:+.2f}M |")
    lines.append("")
    lines.append(f"The train recipe (RandomResizedCrop 224, flip, ToTensor, Normalize) takes "
                 f"{base['total'] / 1e6:.2f}M instructions per image; callgrind, {data['count']} photos of "
                 f"`{data['folder']}`, one thread, the empty run's instructions subtracted"
                 + (f"; {data['date']}" if data.get("date") else "") + ".")
    return "\n".join(lines)


# The op each "train+NAME" pipeline of bench_instructions.py adds.
OP_OF_PIPELINE = {"blur": "GaussianBlur", "solarize": "RandomSolarize", "posterize": "RandomPosterize",
                  "equalize": "RandomEqualize", "autocontrast": "RandomAutocontrast", "invert": "RandomInvert",
                  "sharpness": "RandomAdjustSharpness", "channel_permutation": "RandomChannelPermutation",
                  "jitter": "ColorJitter", "apply_jitter": "RandomApply", "grayscale": "RandomGrayscale",
                  "perspective": "RandomPerspective", "jpeg": "JPEG", "exemplar": "ExemplarJitter",
                  "photometric": "RandomPhotometricDistort", "augmix": "AugMix", "elastic": "ElasticTransform",
                  "noise": "GaussianNoise"}


def op_costs(results):
    """{op name: its instructions per image (the recipe with it minus without it)} from
    instructions_ops.json, for the op table's cost column ({} when the file is missing)."""
    path = os.path.join(results, "instructions_ops.json")
    if not os.path.exists(path):
        return {}
    per = json.load(open(path))["per_image"]
    out = {}
    for name, row in per.items():
        op = OP_OF_PIPELINE.get(name.split("+", 1)[1]) if "+" in name else None
        if op:
            note = " (p=0.8, with ColorJitter)" if op == "RandomApply" else ""
            out[op] = f"{(row['total'] - per['train']['total']) / 1e6:+.2f}M{note}"
    return out


def op_parity(results):
    """{op name: its measured difference from torchvision v2} from parity_ops.json
    (benchmarks/parity_ops.py), for the op table's parity column ({} when the file is missing)."""
    path = os.path.join(results, "parity_ops.json")
    if not os.path.exists(path):
        return {}
    out = {}
    for name, r in json.load(open(path))["rows"].items():
        if r["max"] == 0:
            out[name] = "identical"
        elif r["share_over_1"] == 0:
            out[name] = f"within {r['max']:g} level"
        else:
            out[name] = f"{r['share_over_1'] * 100:.2g}% of values > 1 level (max {r['max']:g})"
    return out


def multiview_table(data):
    """bench_multiview.py's JSON: several views per image against torchvision v2."""
    lines = ["| recipe | views | JPEG decodes per sample | fastprep ms/image | DINO/SimCLR preset ms/image | "
             "torchvision v2 ms/image | fastprep / torchvision v2 | preset, fast mode vs exact (min PSNR) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        lines.append(f"| {r['recipe']} | {r['views']} | {', '.join(map(str, r['decode_sessions_per_sample']))} | "
                     f"{r['fastprep_ms']:.2f} | {r['preset_ms']:.2f} | {r['torchvision_ms']:.2f} | "
                     f"**{r['speedup']:.2f}x** | {r['fast_psnr_min_db']:.1f} dB |")
    L = data["loader"]
    lines.append(f"| {L['recipe']}: fp.Loader(threads=2) {L['fastprep_img_s']:.0f} img/s, DataLoader(num_workers=2) "
                 f"+ torchvision v2 {L['torchvision_img_s']:.0f} img/s | | | | | | **{L['speedup']:.2f}x** | |")
    m, v = data["machine"], data["versions"]
    lines.append("")
    lines.append(f"`{data['command']}`: one thread (the Loader row: two), {data['rounds']} interleaved rounds "
                 f"({data['loader_epochs']} epochs for the Loader), medians of per-round ratios; {data['count']} "
                 f"photos of `{data['folder']}`; {m['cpu']}, {m['cores']} cores, {m['simd']}; {data['date']}; "
                 f"{_versions(v)}.")
    return "\n".join(lines)


def _restart_label(n):
    if n == "auto":
        return "auto (about 200 bytes per interval)"
    return "original, usual path" if n == "orig" else "rewritten, no markers" if n == 0 else f"every {n} MCUs"


def restart_table(r):
    """The Markdown table of a result (docs/results.py shows the same)."""
    lines = ["| files | restart interval | train, x bare decode | eval, x bare decode | size vs original | "
             "size vs no markers | train: spliced bytes / file |", "|---|---|---:|---:|---:|---:|---:|"]
    for kind, rows in (("baseline", r["baseline_rows"]), ("progressive", r.get("progressive_rows", []))):
        for row in rows:
            n = row["restart_mcus"]
            size = (f"{row['size_vs_original']:+.1%} | {row['size_vs_no_markers']:+.1%} | "
                    + (f"{row['train_spliced_bytes_share']:.0%}" if "train_spliced_bytes_share" in row else "-")
                    ) if n != "orig" else "- | - | -"
            best = n == r["default_restart_mcus"]
            lines.append(f"| {kind} | {_restart_label(n)}{' (default)' if best else ''} | {row['train_x_bare']:.2f}x | "
                         f"{row['eval_x_bare']:.2f}x | {size} |")
    lines.append("")
    note = (f"; fp.Loader over the rewritten files, 2 threads: **{r['loader_2_threads_speedup']:.2f}x** 1 thread"
            if "loader_2_threads_speedup" in r else "")
    m = r["machine"]
    lines.append(f"`{r['command']}`: {r['baseline']} baseline and {r['progressive']} progressive originals, "
                 f"{r['bytes_per_pixel']:.2f} bytes per pixel; one thread, {r['rounds']} interleaved rounds, medians "
                 f"of per-round ratios to libjpeg-turbo's bare full decode of the original files{note}; "
                 f"{m['cpu']}, {m['cores']} cores, {m['simd']}; {r['date']}.")
    return "\n".join(lines)


def catalogue_table(data, peer="torchvision v2"):
    """bench_catalogue.py's JSON: recipes against torchvision v2 (bench_timm.py's: against timm's
    own transforms, the same rows)."""
    lines = [f"| recipe | fastprep ms/image | {peer} ms/image | fastprep / {peer} |",
             "|---|---:|---:|---:|"]
    for r in data["rows"]:
        lines.append(f"| {r['recipe']} | {r['fastprep_ms']:.3f} | {r['torchvision_ms']:.3f} | **{r['speedup']:.2f}x** |")
    m, v = data["machine"], data["versions"]
    lines.append("")
    lines.append(f"`{data['command']}`: one thread, {data['rounds']} interleaved rounds, medians of per-round "
                 f"ratios; {data['count']} photos of `{data['folder']}`; {m['cpu']}, {m['cores']} cores, "
                 f"{m['simd']}; {data['date']}; {_versions(v)}.")
    return "\n".join(lines)


def loader_table(data):
    """bench_loader.py's JSON: fp.Loader against DataLoader + torchvision v2."""
    lines = ["| loader | img/s | / DataLoader + torchvision v2 |", "|---|---:|---:|"]
    tv = data.get("torch_dataloader_2workers_tv2")
    lines.append(f"| `fp.Loader(threads=1)` | {data['fastprep_threads1']:.0f} | |")
    lines.append(f"| `fp.Loader(threads=2)` | {data['fastprep_threads2']:.0f} | "
                 + (f"**{data['speedup_vs_torch']:.2f}x** |" if isinstance(tv, (int, float)) else "|"))
    if isinstance(tv, (int, float)):
        lines.append(f"| `DataLoader(num_workers=2)` + torchvision v2 | {tv:.0f} | 1.00x |")
    lines.append("")
    rss = data.get("rss_mb_after_each_epoch", [])
    lines.append(f"Train recipe at 224 px, batches of {data['batch']}, {data['files_per_epoch']} files per epoch read "
                 f"from disk, {data['epochs']} epochs of each loader interleaved; medians after the first epoch, "
                 f"speed-up and 2-thread scaling ({data['thread_scaling']:.2f}x) as medians of per-epoch ratios"
                 + (f"; resident memory over epochs 2-{len(rss)}: {min(rss[1:]):.0f}-{max(rss[1:]):.0f} MB"
                    if len(rss) > 2 else "")
                 + (f"; {_versions(data['versions'])}" if data.get("versions") else "")
                 + (f"; {data['date']}" if data.get("date") else "") + ".")
    return "\n".join(lines)


def gpu_feed_table(data):
    """bench_gpu_feed.py's JSON: training images/s of a ResNet-50 step fed by each loader."""
    summ = data["summary"]
    lines = ["| feed | threads / workers | loader alone (img/s) | training (img/s) | / GPU alone | wait fraction |",
             "|---|---:|---:|---:|---:|---:|"]
    for t in sorted(summ.get("fastprep", {}), key=int):
        r = summ["fastprep"][t]
        lines.append(f"| fp.Loader | {t} | {r['loader_img_s']:.0f} | {r['train_img_s']:.0f} | {r['of_ceiling']:.2f} | "
                     f"{r['wait']:.2f} |")
    for w in sorted(summ.get("dataloader", {}), key=int):
        r = summ["dataloader"][w]
        lines.append(f"| DataLoader + torchvision v2 | {w} | | {r['train_img_s']:.0f} | {r['of_ceiling']:.2f} | "
                     f"{r['wait']:.2f} |")
    lines.append("")
    lines.append(f"GPU alone (one batch kept on the GPU): {summ['ceiling']:.0f} img/s. {data.get('device', '?')}, "
                 f"{data.get('cpus', '?')} CPU cores, torch {data.get('torch', '?')}, batch {data.get('batch')}, "
                 f"medians of {len(data.get('rounds', []))} rounds.")
    return "\n".join(lines)


def headline_table(eval_rep, train_rep):
    """README's one table: img/s of eval and train at 1 and 2 threads, and fastprep exact's
    speed-up over torchvision v2 and v1 (tests/test_docs.py keeps README equal to it)."""
    cols = [(rep, t) for rep in (eval_rep, train_rep) for t in rep["threads"]]
    head = "| img/s | " + " | ".join(f"{rep['transform']}, {t} thread{'s' if t > 1 else ''}" for rep, t in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]

    def row(rep, p, t):
        return next((r for r in rep["results"] if r["pipeline"] == p and r["threads"] == t), None)

    for p in ("fastprep-exact", "fastprep-fast", "ceiling", "torchvision", "pil"):
        cells = [row(rep, p, t) for rep, t in cols]
        if not any(cells):
            continue
        name = _label({"pipeline": p})
        vals = [f"{c['images_per_s']:.0f}" if c else "" for c in cells]
        if p == "fastprep-exact":
            name, vals = f"**{name}**", [f"**{v}**" for v in vals]
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    for p in ("torchvision", "pil"):
        cells = [row(rep, p, t) for rep, t in cols]
        if any(cells):
            lines.append(f"| fastprep / {_label({'pipeline': p})} | "
                         + " | ".join(f"{c['fastprep_speedup']:.2f}x" if c else "" for c in cells) + " |")
    return "\n".join(lines)


def timm_loader_table(data):
    """bench_timm_loader.py's JSON: the two loaders' images/s and the median per-round ratio."""
    r = data["row"]
    return "\n".join([
        f"{data['count']} photos, {data['workers']} workers, batch {data['batch_size']}, {data['rounds']} rounds, "
        f"{data['date']}, {data['machine'].get('cpu', '')}; timm {data['versions'].get('timm', '')}: "
        f"`{data['command']}`",
        "",
        "| loader | images/s |",
        "|---|---:|",
        f"| `fastprep.timm.create_loader` | {r['fastprep_img_s']:.0f} |",
        f"| `timm.data.create_loader` | {r['timm_img_s']:.0f} |",
        f"| fastprep / timm (median of per-round ratios) | **{r['speedup']:.2f}x** |"])


def table(results, name):
    """The table of benchmarks/results/NAME.json, by the kind of result it holds."""
    path = os.path.join(results, name + ".json")
    with open(path) as f:
        data = json.load(f)
    if "per_image" in data:
        return instructions_table(data)
    if "summary" in data and "rounds" in data:
        return gpu_feed_table(data)
    if "fastprep_threads2" in data:
        return loader_table(data)
    if data.get("kind") == "catalogue":
        return catalogue_table(data)
    if data.get("kind") == "multiview":
        return multiview_table(data)
    if data.get("kind") == "restart":
        return restart_table(data)
    if data.get("kind") == "timm":
        return catalogue_table(data, peer="timm (PIL)")
    if data.get("kind") == "timm_loader":
        return timm_loader_table(data)
    if "results" in data and "speedup_reference" in data:
        return bench_table(data)
    raise ValueError(f"{path}: not a result this page knows how to show")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    res = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(here), "benchmarks", "results")
    print("\n".join(main(res, sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "benchmarks"))))
