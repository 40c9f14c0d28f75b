using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace ChatStack.Tokenization;

/// <summary>
/// Immutable open-addressing map from token bytes to rank, looked up by span so merging allocates nothing.
/// Built once from the encoding data of Microsoft.ML.Tokenizers; safe to share between threads.
/// </summary>
internal sealed class BpeRanks
{
    private readonly byte[] _blob;
    private readonly int[] _offsets; // entry -> start in _blob; entry + 1 -> end
    private readonly int[] _ranks;   // entry -> rank
    private readonly int[] _slots;   // hash slot -> entry + 1 (0 = empty)
    private readonly int _mask;

    internal BpeRanks(IReadOnlyDictionary<ReadOnlyMemory<byte>, int> encoder)
    {
        int count = encoder.Count;
        int total = 0;
        foreach (var kv in encoder)
        {
            total += kv.Key.Length;
        }
        _blob = new byte[total];
        _offsets = new int[count + 1];
        _ranks = new int[count];
        int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(count * 3));
        _slots = new int[size];
        _mask = size - 1;
        int entry = 0, pos = 0;
        foreach (var kv in encoder)
        {
            kv.Key.Span.CopyTo(_blob.AsSpan(pos));
            _offsets[entry] = pos;
            _ranks[entry] = kv.Value;
            pos += kv.Key.Length;
            _offsets[entry + 1] = pos;
            int slot = (int)Hash(kv.Key.Span) & _mask;
            while (_slots[slot] != 0)
            {
                slot = (slot + 1) & _mask;
            }
            _slots[slot] = entry + 1;
            entry++;
        }
        Count = count;
    }

    internal int Count { get; }

    /// <summary>Rank of <paramref name="bytes"/>, or <see cref="int.MaxValue"/> if it is not a token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int Get(ReadOnlySpan<byte> bytes)
    {
        int slot = (int)Hash(bytes) & _mask;
        while (true)
        {
            int e = _slots[slot];
            if (e == 0)
            {
                return int.MaxValue;
            }
            e--;
            int start = _offsets[e];
            if (bytes.SequenceEqual(_blob.AsSpan(start, _offsets[e + 1] - start)))
            {
                return _ranks[e];
            }
            slot = (slot + 1) & _mask;
        }
    }

    // Word-at-a-time multiply-xorshift: tokens are mostly 2-16 bytes, so this is a few multiplications per lookup.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Hash(ReadOnlySpan<byte> bytes)
    {
        ulong h = (ulong)bytes.Length * 0x9E3779B97F4A7C15UL;
        while (bytes.Length >= 8)
        {
            h = (h ^ BinaryPrimitives.ReadUInt64LittleEndian(bytes)) * 0xFF51AFD7ED558CCDUL;
            h ^= h >> 29;
            bytes = bytes[8..];
        }
        if (!bytes.IsEmpty)
        {
            ulong tail = 0;
            for (int k = bytes.Length - 1; k >= 0; k--)
            {
                tail = (tail << 8) | bytes[k];
            }
            h = (h ^ tail) * 0xC4CEB9FE1A85EC53UL;
        }
        h ^= h >> 32;
        h *= 0x9E3779B97F4A7C15UL;
        return (uint)(h >> 32);
    }
}
