extension TaskGraph {
    /// Every dependency cycle, each as the full path of ids in `depends_on`
    /// direction, closed by repeating its first id (`a -> b -> c -> a`).
    /// Found by one depth-first search in plan order, so the result is
    /// deterministic; at most one cycle is reported per back edge whose
    /// nodes are not already part of a reported cycle.
    package func cycles() -> [[String]] {
        enum Mark: UInt8 { case unvisited, onStack, done }
        var mark = [Mark](repeating: .unvisited, count: count)
        var inReported = [Bool](repeating: false, count: count)
        var result: [[String]] = []
        var stack: [Int] = []               // current DFS path
        var position = [Int](repeating: -1, count: count) // index of node in `stack`
        var nextEdge = [Int](repeating: 0, count: count)

        for root in 0..<count where mark[root] == .unvisited {
            stack.append(root)
            position[root] = 0
            mark[root] = .onStack
            while let node = stack.last {
                let deps = dependencies[node]
                if nextEdge[node] < deps.count {
                    let next = deps[nextEdge[node]]
                    nextEdge[node] += 1
                    switch mark[next] {
                    case .unvisited:
                        position[next] = stack.count
                        stack.append(next)
                        mark[next] = .onStack
                    case .onStack:
                        let loop = Array(stack[position[next]...])
                        if !loop.contains(where: { inReported[$0] }) {
                            for n in loop { inReported[n] = true }
                            result.append(loop.map(id) + [id(next)])
                        }
                    case .done:
                        break
                    }
                } else {
                    mark[node] = .done
                    position[node] = -1
                    stack.removeLast()
                }
            }
        }
        return result
    }
}
