using System.Buffers;

namespace ChatStack.Tokenization;

/// <summary>
/// tiktoken's byte-pair merge: repeatedly merge the adjacent pair of lowest rank, leftmost first. Short pieces use
/// tiktoken's own O(n²) scan over stack memory; long ones (whitespace or CJK runs) an equivalent O(n log n) heap
/// ordered by (rank, position), so a 10k-character run does not cost 10⁸ steps. Neither allocates on the heap
/// except for the pooled buffers of long pieces.
/// </summary>
internal static class BytePairEncoder
{
    internal const int HeapThreshold = 128;

    /// <summary>Number of tokens of one piece's UTF-8 bytes.</summary>
    internal static int Count(BpeRanks ranks, ReadOnlySpan<byte> piece)
    {
        int[]? rented = null;
        Span<int> starts = piece.Length < 256 ? stackalloc int[piece.Length + 1] : (rented = ArrayPool<int>.Shared.Rent(piece.Length + 1));
        int parts = Merge(ranks, piece, starts);
        if (rented is not null)
        {
            ArrayPool<int>.Shared.Return(rented);
        }
        return parts;
    }

    /// <summary>Appends the token ids of one piece's UTF-8 bytes.</summary>
    internal static void Encode(BpeRanks ranks, ReadOnlySpan<byte> piece, List<int> output)
    {
        int[] starts = ArrayPool<int>.Shared.Rent(piece.Length + 1);
        int parts = Merge(ranks, piece, starts);
        for (int k = 0; k < parts; k++)
        {
            output.Add(ranks.Get(piece[starts[k]..starts[k + 1]]));
        }
        ArrayPool<int>.Shared.Return(starts);
    }

    /// <summary>Writes the start of each final part and then the piece length into <paramref name="starts"/>; returns the part count.</summary>
    internal static int Merge(BpeRanks ranks, ReadOnlySpan<byte> piece, Span<int> starts)
        => piece.Length <= HeapThreshold ? MergeScan(ranks, piece, starts) : MergeHeap(ranks, piece, starts);

    /// <summary>tiktoken's loop, as written in its Rust source.</summary>
    internal static int MergeScan(BpeRanks ranks, ReadOnlySpan<byte> piece, Span<int> starts)
    {
        int n = piece.Length;
        if (n <= 1)
        {
            starts[0] = 0;
            starts[n] = n;
            return n;
        }
        // rank[k]: rank of parts k and k+1 merged.
        Span<int> rank = n < 256 ? stackalloc int[n + 1] : new int[n + 1];
        int count = n + 1;
        for (int k = 0; k <= n; k++)
        {
            starts[k] = k;
        }
        for (int k = 0; k < n - 1; k++)
        {
            rank[k] = ranks.Get(piece.Slice(k, 2));
        }
        rank[n - 1] = int.MaxValue;
        rank[n] = int.MaxValue;

        while (true)
        {
            int min = int.MaxValue, at = -1;
            for (int k = 0; k < count - 1; k++)
            {
                if (rank[k] < min)
                {
                    min = rank[k];
                    at = k;
                }
            }
            if (at < 0)
            {
                break;
            }
            // Part at+1 disappears; re-rank the merged part with its right neighbour, and its left neighbour with it.
            starts[(at + 2)..count].CopyTo(starts[(at + 1)..]);
            rank[(at + 2)..count].CopyTo(rank[(at + 1)..]);
            count--;
            rank[at] = at + 2 < count ? ranks.Get(piece[starts[at]..starts[at + 2]]) : int.MaxValue;
            if (at > 0)
            {
                rank[at - 1] = ranks.Get(piece[starts[at - 1]..starts[at + 1]]);
            }
        }
        return count - 1;
    }

    /// <summary>Same result as <see cref="MergeScan"/>: a linked list of parts and a min-heap of (rank, start).</summary>
    internal static int MergeHeap(BpeRanks ranks, ReadOnlySpan<byte> piece, Span<int> starts)
    {
        int n = piece.Length;
        int[] next = ArrayPool<int>.Shared.Rent(n);
        int[] version = ArrayPool<int>.Shared.Rent(n);
        int[] prev = ArrayPool<int>.Shared.Rent(n);
        // One heap per thread, reused: long pieces then allocate nothing but pooled arrays.
        var heap = t_heap ??= new PriorityQueue<(int Node, int Version), long>();
        heap.Clear();
        try
        {
            // Node k is the part starting at byte k; parts that were merged away are never reached through next/prev.
            for (int k = 0; k < n; k++)
            {
                next[k] = k + 1; // n marks the end
                prev[k] = k - 1;
                version[k] = 0;
            }
            for (int k = 0; k < n - 1; k++)
            {
                int r = ranks.Get(piece.Slice(k, 2));
                if (r != int.MaxValue)
                {
                    heap.Enqueue((k, 0), Priority(r, k));
                }
            }
            while (heap.TryDequeue(out var item, out _))
            {
                int a = item.Node;
                if (version[a] != item.Version)
                {
                    continue; // stale: the part changed since this pair was ranked
                }
                int b = next[a];
                int c = next[b];
                next[a] = c;
                if (c < n)
                {
                    prev[c] = a;
                }
                version[b] = -1;
                Rerank(ranks, piece, heap, next, version, a);
                if (prev[a] >= 0)
                {
                    Rerank(ranks, piece, heap, next, version, prev[a]);
                }
            }
            int count = 0;
            for (int k = 0; k < n; k = next[k])
            {
                starts[count++] = k;
            }
            starts[count] = n;
            return count;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(next);
            ArrayPool<int>.Shared.Return(prev);
            ArrayPool<int>.Shared.Return(version);
        }
    }

    // (rank, start) ordered as one number: lowest rank first, leftmost among equals, compared without a tuple comparer.
    private static long Priority(int rank, int start) => ((long)rank << 32) | (uint)start;

    [ThreadStatic]
    private static PriorityQueue<(int Node, int Version), long>? t_heap;

    // Ranks the pair (node, next[node]) afresh; older heap entries for node become stale.
    private static void Rerank(BpeRanks ranks, ReadOnlySpan<byte> piece, PriorityQueue<(int Node, int Version), long> heap,
        int[] next, int[] version, int node)
    {
        int n = piece.Length;
        version[node]++;
        int b = next[node];
        if (b >= n)
        {
            return;
        }
        int r = ranks.Get(piece[node..next[b]]);
        if (r != int.MaxValue)
        {
            heap.Enqueue((node, version[node]), Priority(r, node));
        }
    }
}
