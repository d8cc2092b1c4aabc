package oip

import (
	stdjson "encoding/json"
	"reflect"
	"testing"
)

func TestModelMetadataRoundTrip(t *testing.T) {
	f := func(md ModelMetadata, wantJSON string) {
		t.Helper()
		got := AppendModelMetadata(nil, &md)
		if string(got) != wantJSON {
			t.Fatalf("AppendModelMetadata\ngot  %s\nwant %s", got, wantJSON)
		}
		if !stdjson.Valid(got) {
			t.Fatalf("not valid JSON: %s", got)
		}
		var back ModelMetadata
		if err := DecodeModelMetadata(&back, got); err != nil {
			t.Fatalf("DecodeModelMetadata(%s): %s", got, err)
		}
		if !reflect.DeepEqual(back, md) {
			t.Fatalf("DecodeModelMetadata(%s)\ngot  %+v\nwant %+v", got, back, md)
		}
	}
	f(ModelMetadata{
		Name: "ctr", Versions: []string{"1", "2"}, Platform: "onnxruntime_onnx",
		Inputs:  []TensorMetadata{{Name: "features", Datatype: FP32, Shape: []int64{-1, 64}}},
		Outputs: []TensorMetadata{{Name: "score", Datatype: FP32, Shape: []int64{-1, 1}}, {Name: "s", Datatype: BYTES, Shape: []int64{}}},
	}, `{"name":"ctr","versions":["1","2"],"platform":"onnxruntime_onnx",`+
		`"inputs":[{"name":"features","datatype":"FP32","shape":[-1,64]}],`+
		`"outputs":[{"name":"score","datatype":"FP32","shape":[-1,1]},{"name":"s","datatype":"BYTES","shape":[]}]}`)
	f(ModelMetadata{Name: "m", Platform: "p"}, `{"name":"m","platform":"p","inputs":[],"outputs":[]}`)
}

func TestDecodeModelMetadata(t *testing.T) {
	var md ModelMetadata
	body := `{"platform":"onnxruntime_onnx","extra":{"x":[1,2]},"name":"ctr","versions":[],"inputs":[{"shape":[-1,3],"name":"x","datatype":"INT64","parameters":{}}],"outputs":[]}`
	if err := DecodeModelMetadata(&md, []byte(body)); err != nil {
		t.Fatal(err)
	}
	want := ModelMetadata{Name: "ctr", Platform: "onnxruntime_onnx",
		Inputs: []TensorMetadata{{Name: "x", Datatype: INT64, Shape: []int64{-1, 3}}}}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("got %+v; want %+v", md, want)
	}
	bad := func(body string, fragment string) {
		t.Helper()
		wantError(t, DecodeModelMetadata(&md, []byte(body)), fragment)
	}
	bad(`{"name":"m","platform":"p","inputs":[]}`, `the model metadata has no "outputs"`)
	bad(`{"name":"m","platform":"p","inputs":[{"name":"x","datatype":"F","shape":[1]}],"outputs":[]}`, `input "x": unknown datatype "F"`)
	bad(`{"name":"m","platform":"p","inputs":[{"name":"x","datatype":"FP32"}],"outputs":[]}`, `input "x" has no "shape"`)
	bad(`{"name":"m","platform":"p","inputs":[],"outputs":[{"name":"y","datatype":"FP32","shape":[1.5]}]}`, `output "y": "shape" must be an integer, not 1.5`)
	bad(`{"name":"m","name":"n"}`, `the model metadata has two "name" members`)
	bad(`{"name":"m","versions":"1"}`, `"versions" must be an array, not a string`)
	bad(`{"name":5}`, `"name" must be a string, not a number`)
	bad(`{"error":"no such model"}`, `the model metadata has no "name"`)
}

func TestServerMetadata(t *testing.T) {
	sm := ServerMetadata{Name: "infergate", Version: "0.1.0", Extensions: []string{"binary_tensor_data", "model_repository"}}
	got := AppendServerMetadata(nil, &sm)
	want := `{"name":"infergate","version":"0.1.0","extensions":["binary_tensor_data","model_repository"]}`
	if string(got) != want {
		t.Fatalf("got %s; want %s", got, want)
	}
	var back ServerMetadata
	if err := DecodeServerMetadata(&back, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, sm) {
		t.Fatalf("got %+v; want %+v", back, sm)
	}
	if got := string(AppendServerMetadata(nil, &ServerMetadata{Name: "a", Version: "b"})); got != `{"name":"a","version":"b","extensions":[]}` {
		t.Fatalf("got %s", got)
	}
	wantError(t, DecodeServerMetadata(&back, []byte(`{"name":"a"}`)), `the server metadata has no "version"`)
	wantError(t, DecodeServerMetadata(&back, []byte(`{"name":"a","version":"b","extensions":[1]}`)), `"extensions" must be a string, not a number`)
}
