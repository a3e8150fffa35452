"""The word Transformer LM search of `make decode DECODER=transformer` and `make tune-lm
DECODER=transformer` (the decoder module: w2v2_10min.decoders.transformer): fairseq's
`W2lFairseqLMDecoder` search with the LM's key/value cache kept.

Usage: search = TransformerSearch(lm, lexicon, symbols(manifest)); search.decode(frames, settings)

The LM is a fairseq `language_modeling` checkpoint (the released
`lm_librispeech_word_transformer.pt`) with its vocabulary as `dict.txt` beside it, upper-cased
to match the letter lexicon: where fairseq's decoder reads it. The search is flashlight-text's
LexiconDecoder with the options, trie and word scores of fairseq's `W2lFairseqLMDecoder`
(examples/speech_recognition/w2l_decoder.py; w2v2_10min.lm.lexicon_decoder), so the hypotheses
are fairseq's. What differs is the cost: fairseq re-runs the whole word prefix through the LM
for every new LM state (incremental decoding off); `TransformerLM` keeps each state's
key/value step and runs one step per new word. The search asks for one state's scores at a
time and waits, so one utterance's search has few states to run together; `parallel`
utterances are searched at once, in threads, and the states they wait for run together, in
passes of up to `batch` rows (`LMSteps`). Each utterance's search is flashlight's, unchanged.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

from w2v2_10min.common import UserError, progress
from w2v2_10min.lexicon import BOUNDARY, spellings_for
from w2v2_10min.lm import hypothesis, lexicon_decoder, normalised

# Rows of one LM forward pass, at most: the states the searches wait for, the last pass filled
# with states they made and have not asked for yet. With PARALLEL: 11.1x faster than fairseq's
# decoder, the same words, on an LM of the released LM's shape over utterances of LibriSpeech's
# length (batch 64: 8.5x, its guessed rows cost CPU time; one utterance at a time: 3.9x;
# bench/bench_transformer_lm.py, docs/lm.md).
BATCH = 16
# Utterances searched at once, in threads; the states they wait for run in shared passes.
PARALLEL = 16
# fairseq's infer.py default, which W2lFairseqLMDecoder passes to flashlight (unk: -inf).
SIL_WEIGHT = 0.0



def lm_dictionary(lm: Path) -> Path:
    return lm.parent / "dict.txt"


def load_model(lm: Path):
    """The LM and its dictionary, loaded as W2lFairseqLMDecoder loads them."""
    import torch
    from fairseq import tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf, open_dict

    try:
        checkpoint = torch.load(lm, map_location="cpu", weights_only=False)
        cfg = checkpoint.get("cfg") or convert_namespace_to_omegaconf(checkpoint["args"])
        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg  # fairseq >= 0.10 saves
        state = checkpoint["model"]
    except Exception as err:  # torch says why in many ways: any failure is a bad file
        raise UserError(f"{lm}: not a fairseq LM checkpoint ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else 'unreadable'}); give the "
                        "released lm_librispeech_word_transformer.pt") from None
    if cfg.task._name != "language_modeling":
        raise UserError(f"{lm}: a fairseq {cfg.task._name} checkpoint, not a language model")
    with open_dict(cfg.task):
        cfg.task.data = str(lm.parent)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    model.load_state_dict(state, strict=False)
    model.eval()
    model.make_generation_fast_()
    return model, task.dictionary


def word_indices(lexicon: Path, spellings: dict, dictionary, path: Path) -> dict:
    """Each lexicon word's index in the LM's dictionary; every word must be there."""
    index = {word: dictionary.index(word) for word in spellings}
    missing = [word for word, i in index.items() if i == dictionary.unk()]
    if missing and len(missing) == len(index) and \
            any(dictionary.index(word.lower()) != dictionary.unk() for word in missing):
        raise UserError(f"{path}: its words are lower case but {lexicon}'s are upper case; "
                        "upper-case dict.txt (as `make lm LM=transformer` does)")
    if missing:
        raise UserError(f"{lexicon}: {len(missing)} word(s) not in the LM's dictionary {path} "
                        f"(first: {missing[0]}); decode with the lexicon made for this LM")
    return index


# ---- the LM with its key/value cache, for flashlight's LexiconDecoder ---------------------
# LM states whose keys, values and next-word scores are kept at once (the least recently used
# beyond it are dropped, and run again if the search comes back to them: the same numbers).
# fairseq's FairseqLM keeps the scores of 20,000; with the released LM's 20 blocks of 1280 and
# its 200k-word vocabulary a state holds about 0.2 MB of keys and values and 0.8 MB of scores.
# Searches that run at once share it.
CACHE = 10_000


class _Node:
    """One LM state: its word prefix, its last step's keys and values, its next-word scores,
    when the search last used them, and the search's LM it belongs to (None: the root)."""
    __slots__ = ("tokens", "parent", "step", "scores", "used", "owner")

    def __init__(self, tokens: tuple, parent, owner=None):
        self.tokens, self.parent, self.owner = tokens, parent, owner
        self.step = self.scores = None
        self.used = 0

    def chain(self) -> list:
        """The states of the prefix, first to last (this one included)."""
        node, out = self, []
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]


class LMSteps:
    """A fairseq word LM's incremental steps for the searches that run at once, one thread
    each. A search that needs a state's scores waits until every running search waits too;
    then all their waiting states run together, in forward passes of up to `batch` rows, the
    last one filled with the newest states their searches made and have not asked for yet.
    Rows of any prefix length share a pass: shorter prefixes' keys and values are padded at
    the front and masked, and each row gets its own position.

    Usage: steps = LMSteps(model, dictionary, "cpu", batch=16); TransformerLM(steps)
    """

    def __init__(self, model, dictionary, device: str = "cpu", batch: int = BATCH,
                 fp16: bool = False):
        import threading

        import torch

        self.torch, self.device, self.batch = torch, device, max(1, batch)
        self.model = model.to(device)  # eval mode: load_model (after it, .eval() gives None)
        if fp16:
            self.model.half()
        self.eos, self.unk = dictionary.eos(), dictionary.unk()
        self.keys: list | None = None  # the attention layers' incremental-state keys, in order
        self.lengths = self.table = None  # the rows' prefix lengths while a step runs
        positions = getattr(model.decoder, "embed_positions", None)
        if positions is not None:
            positions.register_forward_hook(self._positions)
        self.lock = threading.Condition()
        self.searches = 0  # searches running in threads (see `running`)
        self.stopped = False  # True: no more passes, the searches run out without the LM
        self.waiting: dict = {}  # the states they wait for, in order
        self.root = _Node((self.eos,), None)
        self._step([self.root])

    def _positions(self, module, inputs, output):
        """embed_positions' forward hook: each row's own position (fairseq's incremental
        step gives every row the position of the batch's token count)."""
        if self.lengths is None:
            return None
        longest = int(self.lengths.max())
        if self.table is None or self.table.shape[0] < longest:
            self.lengths, lengths = None, self.lengths  # the table runs the module unhooked
            size = max(longest, min(2 * longest, self.model.decoder.max_positions()))
            dummy = self.torch.full((1, size), self.eos, device=self.device)
            self.table, self.lengths = module(dummy)[0], lengths
        return self.table[self.lengths - 1].unsqueeze(1).to(output.dtype)

    def _step(self, nodes: list) -> None:
        """One incremental step for `nodes` (their parents' steps kept)."""
        torch = self.torch
        longest = max(len(n.tokens) for n in nodes)
        tokens = torch.tensor([n.tokens[-1:] for n in nodes], device=self.device)
        state, chains = {}, [n.parent.chain() for n in nodes if n.parent is not None]
        if chains:
            past = torch.zeros((len(chains), longest - 1, *self.shape), dtype=self.dtype,
                               device=self.device)  # B T K 2 H D
            for row, chain in enumerate(chains):
                past[row, longest - 1 - len(chain):] = torch.stack([a.step for a in chain])
            padding = torch.tensor([longest - 1 - len(chain) for chain in chains],
                                   device=self.device)
            mask = None  # True where a row's keys are padding
            if padding.any():
                mask = torch.arange(longest - 1, device=self.device) < padding[:, None]
            for k, key in enumerate(self.keys):
                state[key] = {"prev_key": past[:, :, k, 0].transpose(1, 2).contiguous(),
                              "prev_value": past[:, :, k, 1].transpose(1, 2).contiguous(),
                              "prev_key_padding_mask": mask}
        self.lengths = torch.tensor([len(n.tokens) for n in nodes], device=self.device)
        try:
            with torch.no_grad():
                out = self.model(tokens, incremental_state=state)
                scores = self.model.get_normalized_probs(out, log_probs=True, sample=None)[:, -1]
        finally:
            self.lengths = None
        if self.keys is None:
            self.keys = list(state)
        step = torch.stack([torch.stack([state[key]["prev_key"][:, :, -1],
                                         state[key]["prev_value"][:, :, -1]], 1)
                            for key in self.keys], 1)  # B K 2 H D
        self.shape, self.dtype = step.shape[1:], step.dtype
        scores = scores.float().cpu().numpy()
        for i, node in enumerate(nodes):
            node.step, node.scores = step[i], scores[i]
            if node.owner is not None:
                node.owner.ran(node)

    def scores_of(self, node: _Node) -> None:
        """Run `node` (its parent's step kept), with the other searches' waiting states."""
        with self.lock:
            self.waiting[node] = None
            while node.scores is None:
                if self.stopped:
                    self.waiting.pop(node, None)
                    return
                if len(self.waiting) >= self.searches:
                    self._answer()
                else:
                    self.lock.wait()

    def stop(self, stopped: bool = True) -> None:
        """No more LM passes: waiting searches go on without scores (TransformerLM.score
        then gives 0), so that each runs out of its utterance at once and its thread ends;
        False: passes again. No exception is thrown through flashlight's C++ search."""
        with self.lock:
            self.stopped = stopped
            self.lock.notify_all()

    def _answer(self) -> None:
        nodes, self.waiting = list(self.waiting), {}
        room, asked = -len(nodes) % self.batch, set(nodes)
        for owner in dict.fromkeys(node.owner for node in nodes):
            for other in reversed(owner.pending):
                if room == 0:
                    break
                if other not in asked and other.parent.step is not None:
                    nodes.append(other)
                    room -= 1
        for start in range(0, len(nodes), self.batch):
            self._step(nodes[start:start + self.batch])
        self.lock.notify_all()

    @contextmanager
    def running(self):
        """A search's thread while it runs: `with steps.running(): ...`."""
        with self.lock:
            self.searches += 1
        try:
            yield
        finally:
            with self.lock:
                self.searches -= 1
                if self.waiting and len(self.waiting) >= self.searches and not self.stopped:
                    self._answer()


def _lm_base():
    from flashlight.lib.text.decoder import LM
    return LM


class TransformerLM(_lm_base()):
    """flashlight-text's Python LM for one search over LMSteps' fairseq word LM: start, score
    and finish return what fairseq's FairseqLM returns (log-probabilities, -inf for <unk>, </s>
    at the end), each new state costing one incremental step (its keys and values appended to
    its parent's) instead of a run over its whole prefix. At most `cache` states keep their
    step and scores (least recently used dropped, run again when needed); all go at the next
    utterance's start.

    Usage: lm = TransformerLM(LMSteps(model, dictionary)); LexiconDecoder(..., lm, ...)
    """

    def __init__(self, steps: LMSteps, cache: int = CACHE):
        super().__init__()
        self.steps, self.root, self.cache = steps, steps.root, max(1, cache)
        self.nodes: dict = {}
        self.pending: dict = {}  # states made and not run yet, oldest first
        self.kept: set = set()  # states (but the root) with a step and scores
        self.clock = 0
        self.steps_run = 0  # incremental steps run for this search's states

    def ran(self, node: _Node) -> None:
        self.pending.pop(node, None)
        self.steps_run += 1
        self._keep(node)
        self.kept.add(node)

    def _keep(self, node: _Node) -> None:
        self.clock += 1
        node.used = self.clock

    def _trim(self) -> None:
        """Beyond the cache, drop the least recently used states down to half of it (before a
        request, so that what one request runs stays until it is answered). A state counts as
        used when any state after it in its prefix is, so none outlives the steps it needs;
        the root (the trie's word scores) is always kept."""
        if len(self.kept) <= self.cache:
            return
        last = {node: node.used for node in self.kept}
        for node in self.kept:
            parent = node.parent
            while parent is not self.root and last[parent] < node.used:
                last[parent] = node.used
                parent = parent.parent
        order = sorted(self.kept, key=lambda n: (last[n], -len(n.tokens)))
        for old in order[:len(order) - self.cache // 2]:
            self.kept.discard(old)
            old.step = old.scores = None

    def _ensure(self, node: _Node) -> None:
        """`node`'s scores, its dropped prefix states run again first, oldest first."""
        self._trim()
        if node.scores is not None:
            self._keep(node)
            return
        missing = [a for a in node.chain() if a.scores is None]
        for state in missing:
            self.steps.scores_of(state)

    def start(self, start_with_nothing: bool):
        from flashlight.lib.text.decoder import LMState

        self.nodes.clear()
        self.pending.clear()
        for node in self.kept:
            node.step = node.scores = None
        self.kept.clear()
        state = LMState()
        self.nodes[state] = self.root
        return state

    def score(self, state, token_index: int):
        child = state.child(token_index)
        if self.steps.stopped:  # LMSteps.stop: the search runs out; nobody reads its result
            return child, 0.0
        node = self.nodes[state]
        self._ensure(node)
        if node.scores is None:  # stopped while it waited
            return child, 0.0
        if child not in self.nodes:
            new = _Node(node.tokens + (token_index,), node, self)
            self.nodes[child] = new
            self.pending[new] = None
        score = float(node.scores[token_index])
        return child, -math.inf if token_index == self.steps.unk else score

    def finish(self, state):
        return self.score(state, self.steps.eos)

    def word_score(self, word_index: int) -> float:
        """The word's score after the sentence start: what fairseq puts in the lexicon trie."""
        return -math.inf if word_index == self.steps.unk else float(self.root.scores[word_index])


# ---- the search ------------------------------------------------------------------------------
class TransformerSearch:
    """LM, trie and options as W2lFairseqLMDecoder builds them; decodes many utterances,
    `parallel` at once (one search each, in threads), their LM states run in shared batches.

    Usage: search = TransformerSearch(lm, lexicon, symbols(manifest)); search.decode(frames, s)
    """

    def __init__(self, lm: Path, lexicon: Path, output_symbols: list[str], batch: int = BATCH,
                 on: str = "cpu", cache: int = CACHE, fp16: bool = False,
                 parallel: int = PARALLEL):
        from flashlight.lib.text.decoder import SmearingMode, Trie

        spellings, letters = spellings_for(lexicon, output_symbols)
        model, self.dictionary = load_model(lm)
        index = word_indices(lexicon, spellings, self.dictionary, lm_dictionary(lm))
        self.steps = LMSteps(model, self.dictionary, on, batch, fp16)
        self.parallel = max(1, parallel)
        self.lms = [TransformerLM(self.steps, max(1, cache // self.parallel))
                    for _ in range(self.parallel)]
        self.lm = self.lms[0]
        self.trie = Trie(len(output_symbols), letters[BOUNDARY])
        for word, spelling in spellings.items():
            self.trie.insert([letters[letter] for letter in spelling], index[word],
                             self.lm.word_score(index[word]))
        self.trie.smear(SmearingMode.MAX)
        self.symbols = output_symbols
        self.silence, self.blank = letters[BOUNDARY], letters["<s>"]
        self.unk = self.dictionary.unk()

    def decoder(self, settings: dict, lm: TransformerLM | None = None):
        return lexicon_decoder(self, settings, lm)

    def results(self, decoder, emissions) -> list:
        """flashlight's final beam (score, words, tokens each; best first) for one utterance."""
        frames = normalised(emissions, len(self.symbols))
        return decoder.decode(frames.ctypes.data, frames.shape[0], frames.shape[1])

    def best(self, decoder, emissions):
        """flashlight's best result (score, words, tokens) for one utterance's emissions."""
        return self.results(decoder, emissions)[0]

    def decode_all(self, utterances: list, settings: dict, done=lambda i, best: None,
                   beams: bool = False) -> list:
        """flashlight's best result for each utterance, in order, `parallel` searched at once;
        `done(i, best)` as each ends. beams: each utterance's final beam (a list) instead."""
        import threading

        results, errors, lock = [None] * len(utterances), [], threading.Lock()
        order = iter(range(len(utterances)))
        ended, steps = [0], self.steps  # searches whose thread has ended; its lock tells

        def work(decoder):
            try:
                search(decoder)
            finally:
                with steps.lock:
                    ended[0] += 1
                    steps.lock.notify_all()

        def search(decoder):
            with steps.running():
                while not steps.stopped:
                    with lock:
                        i = next(order, None)
                    if i is None:
                        return
                    try:
                        best = (self.results if beams else self.best)(decoder, utterances[i])
                    except BaseException as err:  # noqa: B036 (raised again in the caller)
                        errors.append(err)
                        steps.stop()  # the other searches run out and end
                        return
                    if steps.stopped:  # searched, in part, without the LM
                        return
                    results[i] = best
                    with lock:
                        done(i, best)

        def wait(started: int) -> None:
            with steps.lock:
                while ended[0] < started:
                    steps.lock.wait()

        # Not daemons, and waited for through their own count: Python 3.11's Thread.join,
        # interrupted, can mark a running thread as ended. A caller interrupted (Ctrl-C) gets
        # KeyboardInterrupt only once no search is left inside flashlight's C++.
        workers = [threading.Thread(target=work, args=(self.decoder(settings, lm),))
                   for lm in self.lms[:min(self.parallel, len(utterances))]]
        started = 0
        try:
            for worker in workers:
                worker.start()
                started += 1
            wait(started)
        except BaseException:  # the searches stop at their next LM call
            steps.stop()
            wait(started)
            raise
        finally:
            steps.stop(False)
        if errors:
            raise errors[0]
        return results

    def decode(self, utterances: list, settings: dict) -> list[str]:
        """Word strings, in order, with a progress bar per utterance."""
        with progress("transformer LM", len(utterances), unit="utt") as bar:
            results = self.decode_all(utterances, settings, lambda i, best: bar.update())
        return [self.words(best) for best in results]

    def words(self, result) -> str:
        return " ".join(self.dictionary[w] for w in result.words if w >= 0)

    def hypotheses(self, utterances: list, settings: dict) -> list[list[tuple]]:
        """Each utterance's final beam, `hypothesis` tuples (w2v2_10min.lm), best first."""
        with progress("transformer LM", len(utterances), unit="utt") as bar:
            beams = self.decode_all(utterances, settings, lambda i, best: bar.update(), True)
        return [[hypothesis(result, self.words(result)) for result in beam] for beam in beams]
