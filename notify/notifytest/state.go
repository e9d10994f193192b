// Package notifytest holds what receivers' tests share.
package notifytest

import (
	"encoding/json"
	"sync"
)

// MemState is a notify.ReceiverState in memory, JSON-encoded as the stores
// keep it (so a receiver's state must survive the round trip). The zero
// value is ready; it is safe for concurrent use.
type MemState struct {
	mu sync.Mutex
	m  map[string][]byte
}

// LoadReceiverState implements notify.ReceiverState.
func (s *MemState) LoadReceiverState(receiver, id string, v any) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.m[receiver+"/"+id]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

// SaveReceiverState implements notify.ReceiverState.
func (s *MemState) SaveReceiverState(receiver, id string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[receiver+"/"+id] = raw
	return nil
}
