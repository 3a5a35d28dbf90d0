package rfschema

import "testing"

func TestValidate(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	good := []byte(`{"@odata.type":"#ServiceRoot.v1_20_0.ServiceRoot","@odata.id":"/redfish/v1/","Id":"RootService","Name":"Root Service","Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}}}`)
	if err := v.Validate(good); err != nil {
		t.Fatalf("valid service root refused: %v", err)
	}
	bad := []byte(`{"@odata.type":"#ServiceRoot.v1_20_0.ServiceRoot","@odata.id":"/redfish/v1/","Id":"RootService","Name":"Root Service","Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}},"NoSuchProperty":1}`)
	if err := v.Validate(bad); err == nil {
		t.Fatal("a service root with an unknown property validated")
	}
	if err := v.ValidateAgainst([]byte(`{"error":{"code":"Base.1.22.GeneralError","message":"x"}}`), ErrorSchema); err != nil {
		t.Fatalf("error body: %v", err)
	}
}
