package prom

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/rules"
)

func TestRangeForTheRecord(t *testing.T) {
	end := time.Unix(1795471800, 0)
	tests := []struct {
		name        string
		body        string
		status      int
		maxSeries   int
		maxPoints   int
		wantSeries  int
		wantPoints  []int
		wantClipped string
		wantErr     string
	}{
		{name: "two series", body: matrix([]string{"0.1", "0.2"}, []string{"1", "NaN", "3"}), status: 200, maxSeries: 5, maxPoints: 10,
			wantSeries: 2, wantPoints: []int{2, 2}},
		{name: "series clipped", body: matrix([]string{"1"}, []string{"2"}, []string{"3"}), status: 200, maxSeries: 2, maxPoints: 10,
			wantSeries: 2, wantPoints: []int{1, 1}, wantClipped: "… clipped: 1 series more"},
		{name: "points clipped, the latest kept", body: matrix([]string{"1", "2", "3", "4"}), status: 200, maxSeries: 2, maxPoints: 3,
			wantSeries: 1, wantPoints: []int{3}, wantClipped: "… clipped: 1 points more"},
		{name: "no data", body: matrix(), status: 200, maxSeries: 2, maxPoints: 3, wantSeries: 0},
		{name: "bad query", body: apiError("bad_data", "parse error"), status: 400, maxSeries: 2, maxPoints: 3, wantErr: "query failed: bad_data: parse error"},
		{name: "answer too large", body: everySeries, status: 200, maxSeries: 2, maxPoints: 3, wantErr: "answer over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q query) { reply(w, tt.status, tt.body) })
			s := newSource(t, f.URL, rules.PrometheusConfig{}, nil)
			got, err := s.Range(context.Background(), "up", end.Add(-30*time.Minute), end, 15*time.Second, tt.maxSeries, tt.maxPoints)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Series) != tt.wantSeries || got.Clipped != tt.wantClipped {
				t.Fatalf("%d series, clipped %q; want %d, %q", len(got.Series), got.Clipped, tt.wantSeries, tt.wantClipped)
			}
			for i, n := range tt.wantPoints {
				if len(got.Series[i].Points) != n {
					t.Fatalf("series %d: %d points, want %d", i, len(got.Series[i].Points), n)
				}
			}
			if tt.name == "points clipped, the latest kept" && got.Series[0].Points[2].V != 4 {
				t.Fatalf("last point %v, want 4", got.Series[0].Points[2])
			}
			reqs := f.requests()
			if len(reqs) != 1 || reqs[0].Path != "query_range" || !reqs[0].Start.Equal(end.Add(-30*time.Minute)) || !reqs[0].End.Equal(end) || reqs[0].Step != 15*time.Second {
				t.Fatalf("requests %+v", reqs)
			}
		})
	}
}
