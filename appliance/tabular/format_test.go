package tabular

import (
	"testing"

	"github.com/mlnode/mlnode/appliance"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"json", FormatJSON, false},
		{"NDJSON", FormatNDJSON, false},
		{"csv", FormatCSV, false},
		{"Parquet", FormatParquet, false},
		{"", 0, true},
		{"xml", 0, true},
		{"parquet ", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		if tt.wantErr {
			var ae *appliance.Error
			if err == nil || appliance.ErrorCode(err) != appliance.EINVALID || !errorAs(err, &ae) || ae.Field != "format" {
				t.Errorf("ParseFormat(%q) = %v, %v; want EINVALID on format", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if back, _ := ParseFormat(got.String()); back != got {
			t.Errorf("%v does not parse back from %q", got, got.String())
		}
	}
}

func TestFormatFromAccept(t *testing.T) {
	tests := []struct {
		accept string
		want   Format
		ok     bool
	}{
		{"application/json", FormatJSON, true},
		{"application/x-ndjson", FormatNDJSON, true},
		{"text/csv; charset=utf-8", FormatCSV, true},
		{"application/vnd.apache.parquet", FormatParquet, true},
		{"application/x-parquet", FormatParquet, true},
		{"Text/CSV", FormatCSV, true},
		{"text/html, application/json;q=0.5, text/csv;q=0.9", FormatCSV, true},
		{"text/csv;q=0.5, application/vnd.apache.parquet;q=0.5", FormatCSV, true},
		{"application/json;q=0, text/csv;q=0.1", FormatCSV, true},
		{"text/csv;q=nonsense, application/json", FormatJSON, true},
		{"*/*", 0, false},
		{"text/*", 0, false},
		{"", 0, false},
		{"application/json;q=0", 0, false},
		{"application/xml", 0, false},
	}
	for _, tt := range tests {
		got, ok := FormatFromAccept(tt.accept)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FormatFromAccept(%q) = %v, %v; want %v, %v", tt.accept, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFormat_ContentType(t *testing.T) {
	for f, want := range map[Format]string{
		FormatJSON:    "application/json",
		FormatNDJSON:  "application/x-ndjson",
		FormatCSV:     "text/csv",
		FormatParquet: "application/vnd.apache.parquet",
	} {
		if got := f.ContentType(); got != want {
			t.Errorf("%v.ContentType() = %q, want %q", f, got, want)
		}
		if back, ok := FormatFromAccept(want); !ok || back != f {
			t.Errorf("%v's content type %q is not accepted back", f, want)
		}
		if f.Extension() == "" {
			t.Errorf("%v has no extension", f)
		}
	}
}
