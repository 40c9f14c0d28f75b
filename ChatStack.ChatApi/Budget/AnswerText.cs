using System.Buffers;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// The text a run has answered, in one contiguous buffer: it is persisted at the end, and counted incrementally
/// in place (<see cref="ChatStack.Tokenization.IncrementalTokenCounter"/>), so no delta is copied twice.
/// </summary>
/// <remarks>Buffers come from the shared array pool: long answers would otherwise leave large-object-heap garbage each turn.</remarks>
internal sealed class AnswerText : IDisposable
{
    private const int InitialCapacity = 256;
    private char[] _chars = [];
    private int _length;

    public int Length => _length;

    public void Append(ReadOnlySpan<char> delta)
    {
        if (_chars.Length - _length < delta.Length)
        {
            Grow(delta.Length);
        }
        delta.CopyTo(_chars.AsSpan(_length));
        _length += delta.Length;
    }

    /// <summary>Drops what follows the first <paramref name="length"/> characters.</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, _length);
        _length = length;
    }

    public ReadOnlySpan<char> AsSpan(int start = 0) => _chars.AsSpan(start, _length - start);

    public override string ToString() => AsSpan().ToString();

    public void Dispose()
    {
        var chars = _chars;
        (_chars, _length) = ([], 0);
        if (chars.Length > 0)
        {
            ArrayPool<char>.Shared.Return(chars);
        }
    }

    private void Grow(int needed)
    {
        var larger = ArrayPool<char>.Shared.Rent(Math.Max(InitialCapacity, Math.Max(_chars.Length * 2, _length + needed)));
        AsSpan().CopyTo(larger);
        var old = _chars;
        _chars = larger;
        if (old.Length > 0)
        {
            ArrayPool<char>.Shared.Return(old);
        }
    }
}
