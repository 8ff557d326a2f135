"""Special tokens of the id vocabularies, and their ids: one home, below the models (STYLE.md).

Word and subword vocabularies (sentence classification, translation) begin with these, in this order,
so id 0 pads everywhere. Models do not read this module for their logic: they take ``pad_id`` (and
``bos_id``, ``eos_id``) as constructor arguments, which a task supplies from its vocabulary and the run
config saves; the values here are only the builders' defaults.
"""

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIALS = (PAD, UNK, BOS, EOS)
