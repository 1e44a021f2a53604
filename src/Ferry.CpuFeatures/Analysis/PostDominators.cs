namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// Immediate post-dominators of a function's runs (Cooper, Harvey and Kennedy's iterative algorithm on the
/// reversed graph, with one virtual exit). Used only for feature tests whose direction is unknown: code from
/// the test's immediate post-dominator on runs whatever the test decided, so it is not gated.
/// </summary>
internal static class PostDominators
{
    /// <summary>ipdom per run; -1 when the run post-dominates nothing reachable (infinite loops) or is the exit.</summary>
    public static int[] Compute(FunctionGraph graph)
    {
        int n = graph.RunCount;
        int exit = n;
        var predecessors = new List<int>[n + 1];
        for (int i = 0; i <= n; i++)
        {
            predecessors[i] = [];
        }
        var exits = new List<int>();
        var isExit = new bool[n];
        for (int r = 0; r < n; r++)
        {
            bool any = false;
            foreach (int s in graph.SuccessorsOf(r))
            {
                if (s >= 0)
                {
                    predecessors[s].Add(r);
                    any = true;
                }
            }
            var kind = graph.Runs[r].EndKind;
            if (!any || kind is RunEnd.Return or RunEnd.Tail or RunEnd.Stop)
            {
                exits.Add(r);
                isExit[r] = true;
            }
        }

        // Post-order of the reversed graph from the exit (iterative DFS).
        var order = new int[n + 1];
        Array.Fill(order, -1);
        var postorder = new List<int>(n + 1);
        var stack = new Stack<(int Node, int Next)>();
        var visited = new bool[n + 1];
        visited[exit] = true;
        stack.Push((exit, 0));
        while (stack.Count > 0)
        {
            var (node, next) = stack.Pop();
            var neighbours = node == exit ? exits : predecessors[node];
            if (next < neighbours.Count)
            {
                stack.Push((node, next + 1));
                int m = neighbours[next];
                if (!visited[m])
                {
                    visited[m] = true;
                    stack.Push((m, 0));
                }
                continue;
            }
            order[node] = postorder.Count;
            postorder.Add(node);
        }

        var ipdom = new int[n + 1];
        Array.Fill(ipdom, -1);
        ipdom[exit] = exit;
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int i = postorder.Count - 1; i >= 0; i--)
            {
                int v = postorder[i];
                if (v == exit)
                {
                    continue;
                }
                int candidate = -1;
                // In the reversed graph, v's predecessors are its forward successors (and the exit for exit runs).
                if (isExit[v])
                {
                    candidate = exit;
                }
                foreach (int s in graph.SuccessorsOf(v))
                {
                    if (s < 0 || ipdom[s] < 0)
                    {
                        continue;
                    }
                    candidate = candidate < 0 ? s : Intersect(s, candidate, ipdom, order);
                }
                if (candidate >= 0 && ipdom[v] != candidate)
                {
                    ipdom[v] = candidate;
                    changed = true;
                }
            }
        }
        var result = new int[n];
        for (int r = 0; r < n; r++)
        {
            result[r] = ipdom[r] == exit ? -1 : ipdom[r];
        }
        return result;
    }

    private static int Intersect(int a, int b, int[] ipdom, int[] order)
    {
        while (a != b)
        {
            while (order[a] < order[b])
            {
                a = ipdom[a];
            }
            while (order[b] < order[a])
            {
                b = ipdom[b];
            }
        }
        return a;
    }
}
