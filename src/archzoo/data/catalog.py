"""Catalogue of datasets: files, sha256, size, canonical URL, license and standard split."""

from __future__ import annotations

from archzoo.data.sources import DatasetSpec, FileSpec, register_dataset

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_MNIST_LICENSE = "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes; derived from NIST)"
_MNIST_CITATION = ("LeCun, Bottou, Bengio & Haffner 1998, Gradient-based learning applied to document "
                   "recognition, Proc. IEEE 86(11)")
_IMAGE_SPLITS = {"train": "60,000 images (validation carved from it with a fixed seed)", "test": "10,000 images"}

register_dataset(DatasetSpec(
    name="mnist",
    folder="mnist",
    description="handwritten digits, 28x28 grey, 10 classes",
    license=_MNIST_LICENSE,
    citation=_MNIST_CITATION,
    splits=_IMAGE_SPLITS,
    files=(
        # The staged train-images .gz is a recompression of the canonical file; the original
        # download (md5 f68b3c2d...) is accepted too.
        FileSpec(_IDX_FILES[0], "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
                 9_719_438, _MNIST_URL + _IDX_FILES[0], ("f68b3c2dcbeaaa9fbdd348bbdeb94873",)),
        FileSpec(_IDX_FILES[1], "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                 28_881, _MNIST_URL + _IDX_FILES[1]),
        FileSpec(_IDX_FILES[2], "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                 1_648_877, _MNIST_URL + _IDX_FILES[2]),
        FileSpec(_IDX_FILES[3], "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                 4_542, _MNIST_URL + _IDX_FILES[3]),
    ),
    meta={"classes": [str(i) for i in range(10)], "mean": 0.1307, "std": 0.3081},
))

register_dataset(DatasetSpec(
    name="fashion-mnist",
    folder="fashion-mnist",
    description="Zalando article images, 28x28 grey, 10 classes",
    license="MIT (Copyright 2017 Zalando SE)",
    citation="Xiao, Rasul & Vollgraf 2017, Fashion-MNIST, arXiv:1708.07747",
    splits=_IMAGE_SPLITS,
    files=(
        FileSpec(_IDX_FILES[0], "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                 26_421_880, _FASHION_URL + _IDX_FILES[0]),
        FileSpec(_IDX_FILES[1], "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                 29_515, _FASHION_URL + _IDX_FILES[1]),
        FileSpec(_IDX_FILES[2], "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                 4_422_102, _FASHION_URL + _IDX_FILES[2]),
        FileSpec(_IDX_FILES[3], "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                 5_148, _FASHION_URL + _IDX_FILES[3]),
    ),
    meta={"classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"], "mean": 0.2860, "std": 0.3530},
))

# CIFAR-10, binary release. The archive is the catalogued file; its members are read in place
# (data/cifar.py). The sha256 and size were not measured here (no network): they are the values that
# several independent public projects pin for this URL, and the md5 accepted beside them is the one the
# dataset page itself publishes, so a download is checked against the authors' own checksum either way.
register_dataset(DatasetSpec(
    name="cifar10",
    folder="cifar10",
    description="60,000 colour images, 32x32, 10 classes (binary release; the archive is read without extracting)",
    license="no licence stated; the dataset page asks that users cite the technical report",
    citation="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images, tech. report, University of Toronto",
    splits={"train": "50,000 images in data_batch_1..5 (validation carved from them with a fixed seed)",
            "test": "10,000 images in test_batch"},
    files=(FileSpec("cifar-10-binary.tar.gz", "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                    170_052_171, "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                    ("c32a1d4ab5d03f1284b67883e8d87530",)),),
    meta={"format": "cifar10-binary", "archive": "cifar-10-binary.tar.gz",
          "classes": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
          # per-channel statistics of the 50,000 training images, pixels scaled to [0, 1]
          "mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]},
))

register_dataset(DatasetSpec(
    name="mnist-small",
    folder="mnist-small",
    description="built-in MNIST subset for offline use: the first 10,000 training images and the full "
                "10,000-image test set (ships inside the package)",
    license=_MNIST_LICENSE,
    citation=_MNIST_CITATION,
    splits={"train": "first 10,000 of MNIST's 60,000 training images", "test": "the full MNIST test set"},
    files=(
        FileSpec(_IDX_FILES[0], "11a772a6dc925b05dd399880865d80fdc378f1482a27072a7fe2c10be2367eda",
                 1_609_526, ""),
        FileSpec(_IDX_FILES[1], "4e8b4ac90e302aa725dd50c14268e8630d3941e30cf889ea15dfa1a6dedf8665",
                 4_997, ""),
        FileSpec(_IDX_FILES[2], "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                 1_648_877, _MNIST_URL + _IDX_FILES[2]),
        FileSpec(_IDX_FILES[3], "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                 4_542, _MNIST_URL + _IDX_FILES[3]),
    ),
    meta={"classes": [str(i) for i in range(10)], "mean": 0.1307, "std": 0.3081},
))

register_dataset(DatasetSpec(
    name="tinyshakespeare",
    folder="tinyshakespeare",
    description="1,115,394 characters of Shakespeare for character-level language modelling (ships inside the package)",
    license="MIT (karpathy/char-rnn); the text is public domain",
    citation="Karpathy 2015, char-rnn and 'The Unreasonable Effectiveness of Recurrent Neural Networks'",
    splits={"train": "first 90% of the characters (nanoGPT's split)", "val": "last 10%"},
    files=(FileSpec("input.txt", "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1_115_394,
                    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"),),
    meta={"format": "stream", "file": "input.txt", "val_fraction": 0.1},
))

register_dataset(DatasetSpec(
    name="makemore-names",
    folder="makemore-names",
    description="32,033 US baby names, one per line, for character-level name generation (ships inside the package)",
    license="MIT (karpathy/makemore); names from U.S. Social Security Administration public data",
    citation="Karpathy 2022, makemore",
    splits={"test": "1,000 names held out by torch.randperm with seed 3407 (makemore's split)",
            "train": "the other 31,033 (validation carved from them with a fixed seed)"},
    files=(FileSpec("names.txt", "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d", 228_145,
                    "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"),),
    meta={"format": "lines", "file": "names.txt", "test_size": 1000, "test_seed": 3407},
))

_MR_URL = "https://raw.githubusercontent.com/yoonkim/CNN_sentence/master/"
register_dataset(DatasetSpec(
    name="rt-polarity",
    folder="rt-polarity",
    description="MR: 5,331 positive + 5,331 negative Rotten Tomatoes review sentences (Latin-1), for sentence classification",
    license="no license stated upstream; the authors ask users to cite the paper",
    citation="Pang & Lee 2005, Seeing stars, ACL; the MR benchmark of Kim 2014, arXiv:1408.5882",
    splits={"cv": "no official split: 10-fold cross-validation over all 10,662 sentences (seeded fold assignment); "
                  "the test fold is data.fold, the dev slice is carved from the other nine"},
    files=(FileSpec("rt-polarity.neg", "4ace77d558c3714723843f1d65b60c01e3417b208180f0728808d76ad0eeeaca", 612_256,
                    _MR_URL + "rt-polarity.neg"),
           FileSpec("rt-polarity.pos", "2da124ec187a9d5a29c9f04e91c540e02baed5af8868f550a26bd6fd4dbf8bf0", 626_139,
                    _MR_URL + "rt-polarity.pos")),
    meta={"format": "sentences", "encoding": "latin-1", "classes": ["negative", "positive"],
          "files_by_class": ["rt-polarity.neg", "rt-polarity.pos"]},
))

# Multi30K Task 1 (data/translation.py): line i of X.de.gz translates line i of X.en.gz (so for fr, cs).
# cs has no 2017 test sets. Checksums measured on the files of upstream commit a3d2e0d2.
_M30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/"
_M30K_FILES = (
    ("train.de.gz", "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6", 637_044),
    ("train.en.gz", "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f", 568_929),
    ("train.fr.gz", "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c", 604_242),
    ("train.cs.gz", "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077", 593_827),
    ("val.de.gz", "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a", 24_681),
    ("val.en.gz", "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28", 21_650),
    ("val.fr.gz", "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9", 23_001),
    ("val.cs.gz", "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc", 22_096),
    ("test_2016_flickr.de.gz", "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8", 22_890),
    ("test_2016_flickr.en.gz", "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9", 21_077),
    ("test_2016_flickr.fr.gz", "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90", 22_310),
    ("test_2016_flickr.cs.gz", "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1", 22_572),
    ("test_2017_flickr.de.gz", "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee", 21_471),
    ("test_2017_flickr.en.gz", "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074", 19_138),
    ("test_2017_flickr.fr.gz", "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496", 20_434),
    ("test_2017_mscoco.de.gz", "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338", 10_230),
    ("test_2017_mscoco.en.gz", "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58", 8_844),
    ("test_2017_mscoco.fr.gz", "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0", 9_751),
    ("test_2018_flickr.de.gz", "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608", 26_461),
    ("test_2018_flickr.en.gz", "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d", 23_514),
    ("test_2018_flickr.fr.gz", "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501", 25_321),
    ("test_2018_flickr.cs.gz", "7d0a9db904f94c554a8c58049a9f3a5357c27f46cc3d710d70cb0b4a2585b8c2", 25_181),
)
register_dataset(DatasetSpec(
    name="multi30k",
    folder="multi30k",
    description="Multi30K Task 1: Flickr30K image captions with professional translations, en <-> de/fr/cs, "
                "gzip UTF-8, one untokenized sentence per line",
    license="no license file upstream; the README provides the data 'solely for researchers and educators who wish "
            "to use the dataset for non-commercial research and/or educational purposes' (partly derived from Flickr30K)",
    citation="Elliott, Frank, Sima'an & Specia 2016, Multi30K: Multilingual English-German Image Descriptions, "
             "5th Workshop on Vision and Language, arXiv:1605.00459; fr: Elliott et al., WMT 2017; "
             "cs: Barrault et al., WMT 2018",
    splits={"train": "29,000 pairs", "val": "1,014 pairs",
            "test2016": "test_2016_flickr, 1,000 pairs (the standard test set, as in torchtext's Multi30k)",
            "test2017": "test_2017_flickr, 1,000 pairs (WMT 2017; no cs)",
            "test2017-mscoco": "test_2017_mscoco, 461 pairs (WMT 2017 out-of-domain; no cs)",
            "test2018": "test_2018_flickr, 1,071 pairs (WMT 2018)"},
    files=tuple(FileSpec(name, sha, size, _M30K_URL + name) for name, sha, size in _M30K_FILES),
    meta={"format": "parallel", "languages": ["cs", "de", "en", "fr"],
          "splits": {"train": "train", "val": "val", "test2016": "test_2016_flickr", "test2017": "test_2017_flickr",
                     "test2018": "test_2018_flickr", "test2017-mscoco": "test_2017_mscoco"}},
))

# Time series (forecasting task, data/timeseries.py): one CSV each, a time column then the variables.
# ``borders`` are the standard row ranges [a, b) of train / val / test (val and test windows' inputs
# reach one look-back into the split before); ``season`` is the period of the seasonal-naive baseline.
_TSDL_URL = "https://raw.githubusercontent.com/jbrownlee/Datasets/master/"

register_dataset(DatasetSpec(
    name="etth1",
    folder="ett-small",
    description="Electricity Transformer Temperature, station 1, hourly 2016-07-01 .. 2018-06-26: "
                "17,420 rows x 7 variables (HUFL, HULL, MUFL, MULL, LUFL, LULL and the target OT)",
    license="CC BY-ND 4.0 (zhouhaoyi/ETDataset)",
    citation="Zhou et al. 2021, Informer: Beyond Efficient Transformer for Long Sequence Time-Series "
             "Forecasting, AAAI, arXiv:2012.07436",
    splits={"train": "rows [0, 8640): 12 months", "val": "rows [8640, 11520): 4 months",
            "test": "rows [11520, 14400): 4 months (rows from 14400 on are unused, as in Informer/DLinear code)"},
    files=(FileSpec("ETTh1.csv", "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066", 2_589_657,
                    "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTh1.csv"),),
    meta={"format": "series-csv", "file": "ETTh1.csv", "season": 24,
          "borders": {"train": [0, 8640], "val": [8640, 11520], "test": [11520, 14400]}},
))

register_dataset(DatasetSpec(
    name="airline-passengers",
    folder="airline-passengers",
    description="monthly international airline passengers (thousands), 1949-01 .. 1960-12, Box & Jenkins series G",
    license="none stated (Time Series Data Library, via jbrownlee/Datasets)",
    citation="Box & Jenkins 1976, Time Series Analysis: Forecasting and Control, series G",
    splits={"train": "1949-01 .. 1958-12 (120 months)", "val": "1959 (carved from the classic 1949-1959 "
            "training span for early stopping)", "test": "1960 (the classic hold-out, 12 months)"},
    files=(FileSpec("airline-passengers.csv", "8cb51be753a718d9be5d76d7e238cc224792754676adc21faa59e954b0201621",
                    2_180, _TSDL_URL + "airline-passengers.csv"),),
    meta={"format": "series-csv", "file": "airline-passengers.csv", "season": 12,
          "borders": {"train": [0, 120], "val": [120, 132], "test": [132, 144]}},
))

register_dataset(DatasetSpec(
    name="monthly-sunspots",
    folder="monthly-sunspots",
    description="Zurich monthly mean sunspot numbers, 1749-01 .. 1983-12 (2,820 months, ~11-year cycle)",
    license="none stated (Time Series Data Library, via jbrownlee/Datasets)",
    citation="Andrews & Herzberg 1985, Data: A Collection of Problems from Many Fields",
    splits={"train": "1749-01 .. 1913-12 (1,980 months)", "val": "1914-01 .. 1936-12 (276 months)",
            "test": "1937-01 .. 1983-12 (564 months, the last 20%); no split is standard, this one is archzoo's"},
    files=(FileSpec("monthly-sunspots.csv", "c4ec8cc57d9f6fb6ecdb3e1f37f25b6f4badd5124c55931052b0cd2fc3bc71f3",
                    45_039, _TSDL_URL + "monthly-sunspots.csv"),),
    meta={"format": "series-csv", "file": "monthly-sunspots.csv", "season": 132,
          "borders": {"train": [0, 1980], "val": [1980, 2256], "test": [2256, 2820]}},
))

# Free Spoken Digit Dataset (data/audio.py): 3,000 WAV files, one spoken digit each. The catalogue's file
# list (sha256, size, name) ships as a manifest in the package, as the upstream release has no single
# archive; each file downloads from upstream's tag v1.0.10, whose recordings/ folder the staged copy equals.
_FSDD_URL = "https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/v1.0.10/recordings/"


def _manifest(name: str, base_url: str) -> tuple[FileSpec, ...]:
    """FileSpecs from ``manifests/NAME.tsv.gz``: one ``sha256<TAB>size<TAB>file`` line per file."""
    import gzip
    from importlib import resources

    text = gzip.decompress(resources.files("archzoo.data").joinpath(f"manifests/{name}.tsv.gz").read_bytes())
    rows = (line.split("\t") for line in text.decode("ascii").splitlines())
    return tuple(FileSpec(file, sha, int(size), base_url + file) for sha, size, file in rows)


register_dataset(DatasetSpec(
    name="spoken-digits",
    folder="spoken-digits/recordings",
    description="Free Spoken Digit Dataset v1.0.10: 3,000 recordings of the digits 0-9 (6 male speakers x 10 "
                "digits x 50), WAV 8 kHz mono 16-bit, files {digit}_{speaker}_{index}.wav",
    license="CC BY-SA 4.0 (Jakobovski/free-spoken-digit-dataset)",
    citation="Jackson et al., Free Spoken Digit Dataset (FSDD), v1.0.10, github.com/Jakobovski/free-spoken-digit-dataset",
    splits={"train": "recording index 5-49 of every speaker and digit (2,700; upstream's split); validation (270) is "
                     "drawn from it with a fixed seed",
            "test": "recording index 0-4 (300); not speaker-independent: every speaker is in both",
            "leave-one-speaker-out": "data.holdout_speaker: that speaker's 500 recordings are the test set, the "
                                     "other five speakers train (validation drawn from theirs with a fixed seed)"},
    files=_manifest("spoken-digits", _FSDD_URL),
    meta={"format": "spoken-digits", "sample_rate": 8000, "classes": [str(i) for i in range(10)],
          "speakers": ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]},
))

register_dataset(DatasetSpec(
    name="daily-min-temperatures",
    folder="daily-min-temperatures",
    description="daily minimum temperatures in Melbourne, 1981-01-01 .. 1990-12-31 (3,650 days; 1984-12-31 and "
                "1988-12-31 are missing: train with data.fill)",
    license="none stated (Australian Bureau of Meteorology, via the Time Series Data Library and jbrownlee/Datasets)",
    citation="Australian Bureau of Meteorology; Hyndman, Time Series Data Library",
    splits={"train": "1981 .. 1988 (2,922 days once the two missing ones are filled)", "val": "1989 (365 days)",
            "test": "1990 (365 days; 1981-1989 / 1990 is the common choice, none is standard)"},
    files=(FileSpec("daily-min-temperatures.csv", "8b9de63ed6789492bf497625e7f9beb96a63d367b4b0a21754006f749fa5e5da",
                    67_921, _TSDL_URL + "daily-min-temperatures.csv"),),
    # borders count rows of the filled series (3,652 days); unfilled, the gaps are refused first
    meta={"format": "series-csv", "file": "daily-min-temperatures.csv", "season": 365,
          "borders": {"train": [0, 2922], "val": [2922, 3287], "test": [3287, 3652]}},
))
