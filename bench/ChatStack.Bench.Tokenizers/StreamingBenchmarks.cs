using System.Buffers;
using BenchmarkDotNet.Attributes;
using ChatStack.Tokenization;

namespace ChatStack.Bench.Tokenizers;

/// <summary>
/// A streamed ~50k-token o200k answer arriving as small deltas, read at a checkpoint every ~50 tokens, against
/// counting the final text once. The deltas and checkpoints are fixed in setup so both see the same work.
/// </summary>
[MemoryDiagnoser]
public class StreamingBenchmarks
{
    private string _answer = "";
    private int[] _deltaEnds = [];
    private bool[] _checkpointAfter = [];
    private int[] _checkpointEnds = [];
    private int[] _tokenCheckpointEnds = [];
    private int[] _tokenDeltaEnds = [];
    private ITokenCounter _counter = null!;
    private readonly ArrayBufferWriter<char> _text = new();

    // One buffer, sized once, for every accumulating variant: a new 1 MB buffer per call set off a gen-2 collection
    // every few dozen calls, and that noise swamped the counting being compared (the buffer is the same on both sides).
    private ArrayBufferWriter<char> Answer()
    {
        _text.ResetWrittenCount();
        return _text;
    }

    [GlobalSetup]
    public void Setup()
    {
        _counter = TokenCounterFactory.Default.ForEncoding(TokenizerEncodings.O200kBase);
        _answer = StreamingAnswer.Build(_counter, targetTokens: 50_000);
        (_deltaEnds, _checkpointAfter) = StreamingAnswer.Deltas(_counter, _answer, seed: 7);
        _checkpointEnds = _deltaEnds.Where((_, k) => _checkpointAfter[k]).ToArray();
        var (tokenEnds, tokenCheckpointAfter) = StreamingAnswer.TokenDeltas((TokenCounter)_counter, _answer);
        _tokenCheckpointEnds = tokenEnds.Where((_, k) => tokenCheckpointAfter[k]).ToArray();
        _tokenDeltaEnds = tokenEnds;
    }

    internal (long TailChars, int Checkpoints) TailStats()
    {
        var stream = _counter.CreateStreamingCounter();
        int start = 0, checkpoints = 0;
        long tail = 0;
        for (int k = 0; k < _deltaEnds.Length; k++)
        {
            stream.Append(_answer.AsSpan(start, _deltaEnds[k] - start));
            start = _deltaEnds[k];
            if (_checkpointAfter[k])
            {
                _ = stream.Total;
                tail += stream.TailLength;
                checkpoints++;
            }
        }
        return (tail, checkpoints);
    }

    internal int AnswerTokens => _counter.CountTokens(_answer);

    internal int DeltaCount => _deltaEnds.Length;

    internal int CheckpointCount => _checkpointAfter.Count(c => c);

    [Benchmark(Baseline = true, Description = "count final text once")]
    public int OneShot() => _counter.CountTokens(_answer);

    [Benchmark(Description = "incremental over the growing text, checkpoint every ~50 tokens")]
    public int Incremental() => IncrementalAt(_checkpointEnds);

    [Benchmark(Description = "incremental, deltas at token ends")]
    public int IncrementalTokenDeltas() => IncrementalAt(_tokenCheckpointEnds);

    /// <summary>
    /// Checkpoint ends of <paramref name="count"/> other random cuts of the same answer, found with a counter of its
    /// own: streaming them meets new word fragments at every checkpoint, while the vocabulary is warm.
    /// </summary>
    internal int[][] OtherCuts(int count)
    {
        var probe = TokenCounter.Create(_counter.EncodingName);
        return Enumerable.Range(100, count).Select(seed =>
        {
            var (ends, checkpoint) = StreamingAnswer.Deltas(probe, _answer, seed);
            return ends.Where((_, k) => checkpoint[k]).ToArray();
        }).ToArray();
    }

    // The text so far is a prefix of the final text: what a caller that keeps the answer passes at a checkpoint.
    // The caller's own loop over deltas is not the counter's cost, so only the checkpoints are visited.
    internal int IncrementalAt(int[] checkpointEnds)
    {
        var count = _counter.CreateIncrementalCounter();
        int total = 0;
        foreach (int end in checkpointEnds)
        {
            total = count.CountTokens(_answer.AsSpan(0, end));
        }
        return total;
    }

    [Benchmark(Description = "accumulate deltas, count final text once")]
    public int AccumulateThenCount() => AccumulateThenCount(_deltaEnds);

    [Benchmark(Description = "accumulate token deltas, count final text once")]
    public int AccumulateTokenDeltasThenCount() => AccumulateThenCount(_tokenDeltaEnds);

    // What a caller that counts once must also do: keep the streamed text.
    private int AccumulateThenCount(int[] deltaEnds) => StreamingAnswer.AccumulateThenCount(_counter, Answer(), _answer, deltaEnds);

    [Benchmark(Description = "as the chat API: accumulate deltas, count when the estimate says a checkpoint is due")]
    public int ApiGated() => ApiGated(_deltaEnds, null);

    [Benchmark(Description = "as the chat API: accumulate token deltas, count when the estimate says a checkpoint is due")]
    public int ApiGatedTokenDeltas() => ApiGated(_tokenDeltaEnds, null);

    internal int ApiGated(int[] deltaEnds, List<(int Count, bool Checkpoint)>? counts) => StreamingAnswer.ApiLoop(_counter, Answer(), _answer, deltaEnds, counts);

    /// <summary>Exact counts per checkpoint, and the tokens between checkpoints, of <see cref="ApiGated(int[], List{ValueTuple{int, bool}}?)"/>.</summary>
    internal string ApiGateStats(bool tokenDeltas)
    {
        var counts = new List<(int Count, bool Checkpoint)>();
        ApiGated(tokenDeltas ? _tokenDeltaEnds : _deltaEnds, counts);
        var at = counts.Where(c => c.Checkpoint).Select(c => c.Count).ToList();
        var gaps = at.Zip(at.Skip(1), (a, b) => b - a).Prepend(at[0]).Order().ToList();
        return $"{(tokenDeltas ? _tokenDeltaEnds : _deltaEnds).Length:N0} deltas, {counts.Count:N0} exact counts for {at.Count} checkpoints " +
            $"({(double)counts.Count / at.Count:F2} per checkpoint), tokens between checkpoints min {gaps[0]}, median {gaps[gaps.Count / 2]}, " +
            $"p99 {gaps[(int)(gaps.Count * 0.99)]}, max {gaps[^1]}";
    }

    [Benchmark(Description = "accumulate deltas, incremental at every checkpoint")]
    public int AccumulateIncremental() => StreamingAnswer.AccumulateIncremental(_counter.CreateIncrementalCounter(), Answer(), _answer, _deltaEnds, _checkpointAfter);

    [Benchmark(Description = "streaming counter (keeps only its tail), checkpoint every ~50 tokens")]
    public int Streaming() => StreamingAnswer.Stream(_counter.CreateStreamingCounter(), _answer, _deltaEnds, _checkpointAfter);
}

internal static class StreamingAnswer
{
    /// <summary>A prefix of the corpus (starting at a stable point) with about <paramref name="targetTokens"/> tokens.</summary>
    internal static string Build(ITokenCounter counter, int targetTokens)
    {
        string text = Corpus.Text;
        int length = Math.Min(text.Length, targetTokens);
        while (length < text.Length && counter.CountTokens(text.AsSpan(0, length)) < targetTokens)
        {
            length += 512;
        }
        if (length < text.Length && char.IsLowSurrogate(text[length]))
        {
            length--;
        }
        return text[..Math.Min(length, text.Length)];
    }

    /// <summary>Delta ends of 1-8 characters (a stress case: cuts anywhere) and where a ~50-token checkpoint falls.</summary>
    internal static (int[] Ends, bool[] Checkpoint) Deltas(ITokenCounter counter, string answer, int seed)
    {
        var random = new Random(seed);
        var ends = new List<int>();
        for (int pos = 0; pos < answer.Length;)
        {
            pos = Math.Min(answer.Length, pos + random.Next(1, 9));
            ends.Add(pos);
        }
        return (ends.ToArray(), Checkpoints(counter, answer, ends));
    }

    /// <summary>Delta ends at token ends, as a model streams (a token that splits a character waits for the rest of it).</summary>
    internal static (int[] Ends, bool[] Checkpoint) TokenDeltas(TokenCounter counter, string answer)
    {
        var tokenizer = counter.CreateMicrosoftMLTokenizer();
        var ends = new List<int>();
        foreach (var token in tokenizer.EncodeToTokens(answer, out _))
        {
            int end = token.Offset.End.GetOffset(answer.Length);
            if (end > (ends.Count == 0 ? 0 : ends[^1]) && (end == answer.Length || !char.IsLowSurrogate(answer[end])))
            {
                ends.Add(end);
            }
        }
        if (ends.Count == 0 || ends[^1] != answer.Length)
        {
            ends.Add(answer.Length);
        }
        return (ends.ToArray(), Checkpoints(counter, answer, ends));
    }

    private static bool[] Checkpoints(ITokenCounter counter, string answer, List<int> ends)
    {
        var checkpoint = new bool[ends.Count];
        var stream = counter.CreateStreamingCounter();
        int lastTotal = 0, start = 0;
        for (int k = 0; k < ends.Count; k++)
        {
            stream.Append(answer.AsSpan(start, ends[k] - start));
            start = ends[k];
            // Chat API semantics: a checkpoint once ~50 tokens were produced since the last one, and at the end.
            if (stream.Total - lastTotal >= 50 || k == ends.Count - 1)
            {
                checkpoint[k] = true;
                lastTotal = stream.Total;
            }
        }
        return checkpoint;
    }

    /// <summary>Keeps the streamed text and counts it once at the end: what a caller that counts once must do.</summary>
    internal static int AccumulateThenCount(ITokenCounter counter, ArrayBufferWriter<char> text, string answer, int[] deltaEnds)
    {
        text.ResetWrittenCount();
        int start = 0;
        foreach (int end in deltaEnds)
        {
            text.Write(answer.AsSpan(start, end - start));
            start = end;
        }
        return counter.CountTokens(text.WrittenSpan);
    }

    /// <summary>
    /// What the chat API's agent does with each model delta (AgentRun, through the same <see cref="CountGate"/>): keep
    /// it in the answer, tell the estimate, and count exactly only when the estimate reaches the next checkpoint (which
    /// then moves 50 tokens past the count), when the sound bound meets <paramref name="limit"/>, or, inside one long
    /// unbroken piece, when a held batch is complete; stop at a count that reaches the limit.
    /// </summary>
    internal static int ApiLoop(ITokenCounter counter, ArrayBufferWriter<char> text, string answer, int[] deltaEnds, List<(int Count, bool Checkpoint)>? counts,
        int limit = int.MaxValue)
    {
        text.ResetWrittenCount();
        var gate = new CountGate(counter.CreateIncrementalCounter());
        int start = 0, next = 50;
        foreach (int end in deltaEnds)
        {
            var delta = answer.AsSpan(start, end - start);
            start = end;
            text.Write(delta);
            gate.Appended(delta, text.WrittenCount);
            if (!gate.CountDue(text.WrittenCount, next, limit))
            {
                continue;
            }
            int tokens = gate.Count(text.WrittenSpan, limit).Tokens;
            counts?.Add((tokens, tokens >= next));
            if (tokens >= next)
            {
                next = tokens + 50;
            }
            if (tokens >= limit)
            {
                return tokens;
            }
        }
        return gate.Count(text.WrittenSpan, limit).Tokens;
    }

    /// <summary>Keeps the streamed text and counts it incrementally at each checkpoint: the same loop as <see cref="AccumulateThenCount"/>, plus the counts.</summary>
    internal static int AccumulateIncremental(IncrementalTokenCounter count, ArrayBufferWriter<char> text, string answer, int[] deltaEnds, bool[] checkpoint)
    {
        text.ResetWrittenCount();
        int start = 0, total = 0;
        for (int k = 0; k < deltaEnds.Length; k++)
        {
            text.Write(answer.AsSpan(start, deltaEnds[k] - start));
            start = deltaEnds[k];
            if (checkpoint[k])
            {
                total = count.CountTokens(text.WrittenSpan);
            }
        }
        return total;
    }

    internal static int Stream(StreamingTokenCounter stream, string answer, int[] ends, bool[] checkpoint)
    {
        int start = 0, total = 0;
        for (int k = 0; k < ends.Length; k++)
        {
            stream.Append(answer.AsSpan(start, ends[k] - start));
            start = ends[k];
            if (checkpoint[k])
            {
                total = stream.Total;
            }
        }
        return total;
    }
}
