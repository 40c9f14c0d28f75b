using System.Text;
using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// The token count of the answer being streamed: exact (ChatStack.Tokenization's incremental counter, the same
/// total as counting the final text once, at linear cost), plus a cheap upper bound that lets the agent count only
/// when a checkpoint or the budget may have been crossed. The text itself is kept by the run, once.
/// </summary>
internal sealed class AnswerTokenCounter(ITokenCounter counter)
{
    private readonly StreamingTokenCounter _exact = counter.CreateStreamingCounter();

    // The last exact count, and the UTF-8 bytes appended since: no byte-level BPE token is shorter than a byte.
    private int _lastCount;
    private int _bytesSinceCount;

    /// <summary>The count cannot be above this: the last exact count plus one token per UTF-8 byte added since.</summary>
    public int UpperBound => _lastCount + _bytesSinceCount;

    /// <summary>Appends a delta without counting it.</summary>
    public void Add(ReadOnlySpan<char> delta)
    {
        _exact.Append(delta);
        _bytesSinceCount += Encoding.UTF8.GetByteCount(delta);
    }

    /// <summary>Appends a delta and returns the exact token count of all text so far.</summary>
    public int Append(ReadOnlySpan<char> delta)
    {
        Add(delta);
        return Count();
    }

    /// <summary>The exact token count of all text so far.</summary>
    public int Count()
    {
        (_lastCount, _bytesSinceCount) = (_exact.Total, 0);
        return _lastCount;
    }
}
