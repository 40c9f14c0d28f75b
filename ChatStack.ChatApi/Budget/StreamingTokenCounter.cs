using System.Text;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// The answer being streamed: its text, its exact token count (ChatStack.Tokenization's incremental counter, the
/// same total as counting the final text once, at linear cost), and a cheap upper bound that lets the agent count
/// only when a checkpoint or the budget may have been crossed.
/// </summary>
internal sealed class StreamingTokenCounter(ITokenCounter counter)
{
    private readonly Tokenization.StreamingTokenCounter _exact = counter.CreateStream();
    private readonly StringBuilder _text = new();

    // The last exact count, and the UTF-8 bytes appended since: no byte-level BPE token is shorter than a byte.
    private int _lastCount;
    private int _bytesSinceCount;

    public ITokenCounter Counter => counter;

    /// <summary>Everything appended so far.</summary>
    public string Text => _text.ToString();

    public int Length => _text.Length;

    /// <summary>The count cannot be above this: the last exact count plus one token per UTF-8 byte added since.</summary>
    public int UpperBound => _lastCount + _bytesSinceCount;

    /// <summary>Appends a delta without counting it.</summary>
    public void Add(ReadOnlySpan<char> delta)
    {
        _text.Append(delta);
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
