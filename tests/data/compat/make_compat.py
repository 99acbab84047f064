"""Writes what fastprep 0.1 saved (see README.md here). Run it with fastprep 0.1 on sys.path."""
import glob, json, os, pickle, sys
import numpy as np
import fastprep as fp
assert not hasattr(fp, "build_info"), "run this with fastprep 0.1 (commit 88c5683), not the current version"
from fastprep._tar import TarMember
root = sys.argv[1]
t = fp.Compose([fp.RandomResizedCrop(32, scale=(0.2, 1.0)), fp.RandomHorizontalFlip(), fp.ColorJitter(0.4, 0.4, 0.4, 0.1),
                fp.RandomGrayscale(0.2), fp.ToTensor(), fp.Normalize("imagenet"), fp.RandomErasing(0.5)], dtype="float32")
ev = fp.Compose([fp.Resize(40), fp.CenterCrop(32), fp.ToTensor(), fp.Normalize((0.5,) * 3, (0.25,) * 3)], exact=False)
aug = fp.Compose([fp.Resize((40, 40)), fp.RandomRotation(10), fp.RandAugment(2, 9)], dtype="uint8")
ds = fp.index_source([("a.jpg", 0), ("b.jpg", 1)])
objs = {"train": t, "eval": ev, "augment": aug, "dataset": ds, "member": TarMember("s.tar", 512, 100, "k.jpg"),
        "mix": fp.RandomChoice([fp.MixUp(0.2), fp.CutMix(1.0)]), "error": fp.DecodeError("x.jpg", "bad", 3)}
with open(f"{root}/objects_0.1.0.pkl", "wb") as f:
    pickle.dump(objs, f, protocol=4)
photos = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "photos", "*.jpg")))
outs = {k: v.batch(photos[:3], seed=5) for k, v in objs.items() if isinstance(v, fp.Compose)}
np.savez_compressed(f"{root}/outputs_0.1.0.npz", **outs)
# A Loader's state after one batch (over the committed photos, as a list: names relative to it).
L = fp.Loader(photos, fp.Compose([fp.RandomResizedCrop(32), fp.ToTensor()]), batch_size=4, seed=3, shuffle=True,
              backend="numpy")
it = iter(L)
next(it)
json.dump(L.state_dict(), open(f"{root}/loader_state_0.1.0.json", "w"), indent=1)
rest = np.concatenate([x for x, _ in it])
np.save(f"{root}/loader_rest_0.1.0.npy", rest)
print({k: type(v).__module__ + "." + type(v).__qualname__ for k, v in objs.items()})
