"""What fastprep 0.1 saved keeps working after the 0.2 layout (issue 30): pickles made by 0.1
(Composes, a Dataset, a TarMember, batch mixing, an error) load and compute the outputs 0.1
computed, and a Loader resumes from a state_dict 0.1 wrote with the batches 0.1 gave next.

The files in tests/data/compat were written by fastprep 0.1 itself (commit 88c5683, the release
before the layout), with the script in their README: they are not this version's own output.
"""
import glob
import json
import os
import pickle

import numpy as np

import fastprep as fp

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT = os.path.join(HERE, "data", "compat")
PHOTOS = sorted(glob.glob(os.path.join(HERE, "data", "photos", "*.jpg")))


def test_pickles_of_0_1_load_and_compute_what_0_1_computed():
    with open(os.path.join(COMPAT, "objects_0.1.0.pkl"), "rb") as f:
        objs = pickle.load(f)
    assert isinstance(objs["train"], fp.Compose) and isinstance(objs["dataset"], fp.Dataset)
    assert isinstance(objs["member"], fp.TarMember) and str(objs["member"]) == "s.tar:k.jpg"
    assert isinstance(objs["mix"], fp.MixChoice) and isinstance(objs["error"], fp.DecodeError)
    assert objs["dataset"].labels.tolist() == [0, 1] and objs["dataset"].cut == []
    want = np.load(os.path.join(COMPAT, "outputs_0.1.0.npz"))
    for name in ("train", "eval", "augment"):
        got = objs[name].batch(PHOTOS[:3], seed=5)
        assert np.array_equal(got, want[name]), name
    # and they pickle again, under the new module paths
    again = pickle.loads(pickle.dumps(objs["train"]))
    assert type(again).__module__ == "fastprep.transforms._compose"
    assert np.array_equal(again.batch(PHOTOS[:3], seed=5), want["train"])


def test_loader_resumes_from_a_state_0_1_wrote():
    state = json.load(open(os.path.join(COMPAT, "loader_state_0.1.0.json")))
    L = fp.Loader(PHOTOS, fp.Compose([fp.RandomResizedCrop(32), fp.ToTensor()]), batch_size=4, seed=3, shuffle=True,
                  backend="numpy")
    L.load_state_dict(state)
    rest = np.concatenate([x for x, _ in L])
    assert np.array_equal(rest, np.load(os.path.join(COMPAT, "loader_rest_0.1.0.npy")))
