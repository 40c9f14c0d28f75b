using System.Text;
using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// The token count of one model call's answer as it streams: exact (ChatStack.Tokenization's incremental counter
/// over the run's own answer text, the same total as counting the final text once, at linear cost), plus a cheap
/// upper bound that lets the agent count only when a checkpoint or the budget may have been crossed.
/// </summary>
internal sealed class AnswerTokenCounter
{
    private readonly IncrementalTokenCounter _exact;
    private readonly AnswerText _answer;
    private readonly int _start;

    // The last exact count, and the UTF-8 bytes appended since: no byte-level BPE token is shorter than a byte.
    private int _lastCount;
    private int _bytesSinceCount;

    /// <summary>Counts what is appended to <paramref name="answer"/> from now on (a new text when none is given).</summary>
    public AnswerTokenCounter(ITokenCounter counter, AnswerText? answer = null)
    {
        _exact = counter.CreateIncrementalCounter();
        _answer = answer ?? new AnswerText();
        _start = _answer.Length;
    }

    /// <summary>The count cannot be above this: the last exact count plus one token per UTF-8 byte added since.</summary>
    public int UpperBound => _lastCount + _bytesSinceCount;

    /// <summary>Appends a delta to the answer without counting it.</summary>
    public void Add(ReadOnlySpan<char> delta)
    {
        _answer.Append(delta);
        _bytesSinceCount += Encoding.UTF8.GetByteCount(delta);
    }

    /// <summary>Appends a delta and returns the exact token count of this call's text so far.</summary>
    public int Append(ReadOnlySpan<char> delta)
    {
        Add(delta);
        return Count();
    }

    /// <summary>The exact token count of this call's text so far.</summary>
    public int Count()
    {
        (_lastCount, _bytesSinceCount) = (_exact.CountTokens(_answer.AsSpan(_start)), 0);
        return _lastCount;
    }
}
