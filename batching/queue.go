package batching

// queue is an intrusive FIFO of requests: pushing and removing anywhere
// cost O(1) and no allocation. Batcher.mu guards it.
type queue struct {
	head, tail *Request
	n          int // requests in the queue
}

func (q *queue) push(r *Request) {
	r.prev, r.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = r
	} else {
		q.head = r
	}
	q.tail = r
	q.n++
}

func (q *queue) remove(r *Request) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		q.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		q.tail = r.prev
	}
	r.prev, r.next = nil, nil
	q.n--
}
